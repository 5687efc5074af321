"""DICOM images as float [0, 1] arrays with an explicit, recorded intensity window.

What :func:`read_dicom` does, in DICOM's own order (PS3.3 C.11, the grayscale pipeline):

1. decode the pixel data with pydicom (uncompressed, RLE, deflate, JPEG baseline and JPEG 2000 work
   with pydicom + Pillow; JPEG-LS and lossless JPEG need the ``pylibjpeg`` plugins). YBR colour is
   converted to RGB by pydicom;
2. modality LUT: ``RescaleSlope`` / ``RescaleIntercept`` (or a Modality LUT Sequence), with pydicom's
   ``apply_modality_lut``: CT values become Hounsfield units;
3. VOI: the window. ``"auto"`` uses the file's own VOI LUT Sequence (pydicom's ``apply_voi``, scaled
   by the LUT's output range) or its first ``WindowCenter`` / ``WindowWidth`` with its
   ``VOILUTFunction`` (LINEAR by default, as the standard says); a file without either is mapped
   from the full range of its stored bits (``BitsStored``, after the rescale). A user window
   (``(center, width)``, a CT preset such as ``"lung"``, or ``"percentile"``) replaces the file's;
4. ``MONOCHROME1`` (high values displayed dark) is inverted after the window, so that bright is
   dense tissue in every output, as on a MONOCHROME2 display.

The result is float32 in [0, 1] that the feature families take without a further guess. Multi-frame
files are refused unless ``frame`` says which frame (or ``"all"``). Identifiers (patient ID, study
UID ...) are kept in :attr:`DicomImage.meta` for grouping; medfeat never writes them into reports.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import optional_import, parse_window, percentile_window, window_to_unit

__all__ = ["DICOM_EXTENSIONS", "DicomImage", "is_dicom", "read_dicom", "write_dicom"]

DICOM_EXTENSIONS = (".dcm", ".dicom")

#: DICOM attributes copied into ``DicomImage.meta``. The first four identify a patient or study.
IDENTIFIER_KEYS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_OTHER_KEYS = (
    "Modality",
    "PhotometricInterpretation",
    "BitsStored",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "Rows",
    "Columns",
)


def _pydicom():
    return optional_import("pydicom", purpose="reading DICOM files (pip install 'medfeat[dicom]')")


@dataclass(repr=False)
class DicomImage:
    """Pixels and metadata of one DICOM image.

    Attributes
    ----------
    pixels : ndarray of float32
        ``H x W`` (grey) or ``H x W x 3`` (colour) in [0, 1]; ``F x H x W [x 3]`` with
        ``frame="all"``; with ``window=None`` the modality values (e.g. HU), not windowed or inverted.
    window : dict
        How intensities were mapped: ``source`` (``"file VOI LUT"``, ``"file window"``, ``"full range"``,
        ``"user"``, ``"none"``, ``"colour"``), ``label``, ``center``, ``width``, ``function``.
    inverted : bool
        Whether a MONOCHROME1 image was inverted (``1 - windowed``).
    meta : dict
        PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID ("" when absent), Modality,
        PhotometricInterpretation, BitsStored, PixelRepresentation, RescaleSlope, RescaleIntercept,
        Rows, Columns, NumberOfFrames, TransferSyntax.
    path : pathlib.Path
    """

    pixels: np.ndarray
    window: dict
    inverted: bool
    meta: dict
    path: Path = field(default=None)

    def __repr__(self):  # no identifiers, no pixels
        return (
            f"DicomImage({self.path.name if self.path else '?'}: {self.meta.get('Modality') or '?'} "
            f"{self.meta.get('PhotometricInterpretation')}, shape {self.pixels.shape}, window {self.window['label']})"
        )


def is_dicom(path):
    """Whether a file starts with the DICOM preamble and ``DICM`` magic (PS3.10 7.1).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.dcm"; _ = f.write_bytes(b"not dicom")
    >>> is_dicom(f)
    False
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _meta(ds):
    meta = {k: str(ds.get(k, "") or "").strip() for k in IDENTIFIER_KEYS}
    for k in _OTHER_KEYS:
        v = ds.get(k, None)
        meta[k] = v if v is None or isinstance(v, (int, str)) else (float(v) if np.isscalar(v) else str(v))
    meta["NumberOfFrames"] = int(ds.get("NumberOfFrames", 1) or 1)
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    meta["TransferSyntax"] = ts.name if ts is not None else None
    return meta


def _first(value):
    """First value of a possibly multi-valued DS element (WindowCenter/Width may hold several)."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _stored_range(ds):
    """(min, max) of the modality values the stored bits can hold: pydicom's y_min/y_max rule."""
    if "ModalityLUTSequence" in ds:
        bits = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)) == 0:
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
    return lo, hi


def _window_grey(values, ds, spec):
    """Modality values -> float32 [0, 1] and the window record."""
    if spec == "auto":
        if "VOILUTSequence" in ds:
            item = ds.VOILUTSequence[0]
            bits = int(item.LUTDescriptor[2])
            from pydicom.pixels import apply_voi

            # the LUT is indexed by integer values; modality values are integral unless a fractional rescale
            integral = np.array_equal(values, np.round(values))
            out = apply_voi(values.astype(np.int64) if integral else values, ds, index=0)
            out = np.clip(np.asarray(out, dtype=np.float64) / float(2**bits - 1), 0, 1).astype(np.float32)
            label = str(item.get("LUTExplanation", "") or "VOI LUT")
            return out, dict(source="file VOI LUT", label=f"file VOI LUT ({label})", center=None, width=None,
                             function="LUT")
        if "WindowCenter" in ds and "WindowWidth" in ds:
            c, w = _first(ds.WindowCenter), _first(ds.WindowWidth)
            function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
            out = window_to_unit(values, c, w, function)
            return out, dict(source="file window", label=f"file window center={c:g} width={w:g} ({function})",
                             center=c, width=w, function=function)
        lo, hi = _stored_range(ds)
        c, w = (lo + hi) / 2, hi - lo
        bits = int(ds.BitsStored)
        return window_to_unit(values, c, w), dict(
            source="full range", label=f"full range of {bits} stored bits [{lo:g}, {hi:g}]", center=c, width=w,
            function="LINEAR_EXACT",
        )
    kind, a, b, label = spec
    c, w = percentile_window(values, a, b) if kind == "percentile" else (a, b)
    return window_to_unit(values, c, w), dict(source="user", label=label, center=c, width=w,
                                              function="LINEAR_EXACT")


def read_dicom(path, *, window="auto", frame=None):
    """Read one DICOM image as float32 in [0, 1] with its window and metadata.

    Parameters
    ----------
    path : str or Path
        A DICOM file (Part 10, with the ``DICM`` header).
    window : "auto", None, str or tuple, default="auto"
        ``"auto"``: the file's VOI LUT, else its window centre/width, else the full stored range.
        A preset name (CT, Hounsfield units: ``"lung"``, ``"mediastinum"``, ``"soft_tissue"``,
        ``"bone"``, ``"brain"``, ``"liver"``), ``(center, width)`` (``[c - w/2, c + w/2]`` -> [0, 1]),
        ``"CENTER,WIDTH"``, ``"percentile"`` / ``"percentile:LO:HI"`` (per image, or per frame):
        applied to the modality values, replacing the file's window. None: return the modality values
        (after rescale slope/intercept) unwindowed and not inverted. Colour images accept only "auto"
        (values divided by ``2**BitsStored - 1``) and None.
    frame : None, int or "all", default=None
        None refuses multi-frame files (ValueError); an int picks one frame (0-based); ``"all"``
        returns every frame, stacked on a first axis, each windowed alike (a percentile window per frame).

    Returns
    -------
    DicomImage

    Examples
    --------
    >>> import os, pydicom
    >>> ct = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "CT_small.dcm")
    >>> im = read_dicom(ct, window="soft_tissue")
    >>> im.pixels.shape, im.pixels.dtype, im.window["label"], im.meta["Modality"]
    ((128, 128), dtype('float32'), 'soft_tissue', 'CT')
    """
    pydicom = _pydicom()
    from pydicom.pixels import apply_modality_lut

    path = Path(path)
    spec = parse_window(window)
    if not (frame is None or frame == "all" or (isinstance(frame, (int, np.integer)) and not isinstance(frame, bool))):
        raise ValueError(f"frame must be None, a frame index or 'all', got {frame!r}.")
    try:
        ds = pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"cannot read DICOM file {path}: {exc}") from exc
    if "PixelData" not in ds:
        raise ValueError(f"{path}: DICOM file without pixel data (Modality {ds.get('Modality', '?')}).")
    meta = _meta(ds)
    n_frames = meta["NumberOfFrames"]
    if n_frames > 1 and frame is None:
        raise ValueError(
            f"{path}: multi-frame DICOM ({n_frames} frames); say which frame with frame=k, or frame='all' "
            "to get every frame (one image each)."
        )
    if isinstance(frame, (int, np.integer)) and not 0 <= frame < n_frames:
        raise ValueError(f"{path}: frame={frame} but the file has {n_frames} frame(s).")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises RuntimeError/NotImplementedError/ValueError per decoder
        raise ValueError(
            f"{path}: cannot decode its pixel data ({meta['TransferSyntax']}): {exc}. JPEG-LS and lossless "
            "JPEG need `pip install pylibjpeg pylibjpeg-libjpeg`; JPEG 2000 needs Pillow with OpenJPEG "
            "or `pip install pylibjpeg-openjpeg`."
        ) from exc
    photometric = str(meta["PhotometricInterpretation"] or "").upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if n_frames == 1:
        arr = arr[None]
    if isinstance(frame, (int, np.integer)):
        arr = arr[frame : frame + 1]

    if samples == 3 or photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"):
        if spec not in ("auto", None):
            raise ValueError(f"{path}: window={window!r} applies to grey images; this one is {photometric}.")
        if spec is None:
            out, record = arr.astype(np.float64), dict(source="none", label="none", center=None, width=None,
                                                       function=None)
        else:
            top = float(2 ** int(ds.BitsStored) - 1)
            out = (arr.astype(np.float64) / top).astype(np.float32)
            record = dict(source="colour", label=f"colour / (2**{int(ds.BitsStored)} - 1)", center=None,
                          width=None, function=None)
        inverted = False
    elif photometric in ("MONOCHROME1", "MONOCHROME2"):
        values = np.stack([np.asarray(apply_modality_lut(f, ds), dtype=np.float64) for f in arr])
        inverted = False
        if spec is None:
            out = values
            record = dict(source="none", label="none (modality values)", center=None, width=None, function=None)
        else:
            frames = [_window_grey(values[i], ds, spec) for i in range(len(values))]
            out = np.stack([f[0] for f in frames])
            record = frames[0][1]
            if photometric == "MONOCHROME1":
                out = np.float32(1) - out
                inverted = True
    else:
        raise ValueError(
            f"{path}: PhotometricInterpretation {photometric or '(missing)'} is not supported; expected "
            "MONOCHROME1, MONOCHROME2, RGB or YBR."
        )
    if frame != "all":
        out = out[0]
    return DicomImage(pixels=out, window=record, inverted=inverted, meta=meta, path=path)


def write_dicom(
    path,
    pixels,
    *,
    patient_id="",
    study_uid=None,
    modality="OT",
    photometric="MONOCHROME2",
    bits_stored=None,
    rescale=None,
    window=None,
):
    """Write a grey image as a small uncompressed Secondary Capture DICOM file (for tests and examples).

    Parameters
    ----------
    path : str or Path
    pixels : ndarray of uint8 or uint16, shape (H, W)
        Stored values, written as they are.
    patient_id : str
    study_uid : str, optional
        A new UID when None.
    modality : str
        e.g. "DX", "CR", "CT", "OT".
    photometric : {"MONOCHROME2", "MONOCHROME1"}
    bits_stored : int, optional
        Default: 8 for uint8, 16 for uint16. Every value must fit.
    rescale : (slope, intercept), optional
    window : (center, width), optional
        Written as WindowCenter / WindowWidth (VOI LUT function LINEAR, the default).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> p = write_dicom(Path(tempfile.mkdtemp()) / "a.dcm", np.arange(12, dtype=np.uint16).reshape(3, 4),
    ...                 patient_id="P1", bits_stored=12, window=(6, 8))
    >>> read_dicom(p).window["label"]
    'file window center=6 width=8 (LINEAR)'
    """
    pydicom = _pydicom()
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    arr = np.asarray(pixels)
    if arr.ndim != 2 or arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"pixels must be a 2-D uint8 or uint16 array, got {arr.dtype} of shape {arr.shape}.")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}.")
    allocated = arr.dtype.itemsize * 8
    bits = allocated if bits_stored is None else int(bits_stored)
    if not 1 <= bits <= allocated or int(arr.max()) >= 2**bits:
        raise ValueError(f"bits_stored={bits_stored!r} does not hold the values (max {int(arr.max())}, {arr.dtype}).")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = str(patient_id)
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = allocated
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = (f"{float(v):g}" for v in rescale)
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = (f"{float(v):g}" for v in window)
    ds.PixelData = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"))).tobytes()
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path
