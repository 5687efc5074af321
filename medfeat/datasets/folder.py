"""Folder-of-classes image loader and the locator of the shared real data beside the checkout."""

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import parse_window, percentile_window, window_to_unit
from .dicom import is_dicom, read_dicom

__all__ = ["DICOM_GROUP_KEYS", "IMAGE_EXTENSIONS", "ImageFolder", "load_image_folder"]

IMAGE_EXTENSIONS = (".bmp", ".dcm", ".dicom", ".jpeg", ".jpg", ".png", ".tif", ".tiff")

#: DICOM attributes usable as groups of a folder of DICOM files, in the order ``group_column="auto"``
#: tries them: a patient can have several studies, and patient-level grouping is the conservative one.
DICOM_GROUP_KEYS = ("PatientID", "StudyInstanceUID")

# Group columns recognised in a manifest.csv when group_column="auto", most specific first:
# a patient can have several slides, and patient-level grouping is the conservative one.
_AUTO_GROUP_COLUMNS = (
    "patient_id",
    "patient",
    "subject_id",
    "case_id",
    "source_slide",
    "slide_id",
    "slide",
    "group",
)


@dataclass
class ImageFolder:
    """Images of a folder of class sub-folders, with labels and CV groups.

    Attributes
    ----------
    images : ndarray of shape (N, H, W, C), or list of (H, W, C) arrays
        8-bit files: uint8 RGB (C = 3). DICOM and 16-bit files: float32 in [0, 1] after the window,
        grey (C = 1) or RGB (uint16 with ``window=None``). A stacked array when all images have one
        size and dtype (always with ``size`` and a single kind of file), else a list.
    labels : ndarray of str, shape (N,)
        Class name of each image.
    groups : ndarray of str, shape (N,)
        Group (patient / slide) of each image, for group-aware cross-validation.
    paths : list of pathlib.Path
        Absolute path of each image.
    classes : list of str
        Sorted class names.
    group_column : str or None
        Manifest column or DICOM attribute (``"PatientID"``, ``"StudyInstanceUID"``) the groups came
        from (None: file stems, or a callable).
    input_policy : dict
        How intensities were read, without identifiers: the ``window`` and ``bit_depth`` asked for,
        ``formats`` (files per kind: ``"8-bit"``, ``"16-bit"``, ``"DICOM"``), ``windows`` (images per
        window actually applied, e.g. ``"file window center=600 width=1600 (LINEAR)"``),
        ``inverted_monochrome1`` and ``dtypes``. Meant for reports.
    image_info : list of dict
        Per image: ``format``, ``window`` label, ``inverted``, and for DICOM files ``dicom``: the
        :attr:`~medfeat.datasets.DicomImage.meta` dict, identifiers (PatientID, UIDs) included. medfeat
        never writes these into reports.
    """

    images: object
    labels: np.ndarray
    groups: np.ndarray
    paths: list
    classes: list
    group_column: object = None
    root: Path = field(default=None)
    input_policy: dict = field(default=None)
    image_info: list = field(default=None, repr=False)

    def __len__(self):
        return len(self.labels)


def _resize_float(arr, size):
    """Bilinear resize of a float (H, W, C) array, channel by channel in PIL's 32-bit float mode."""
    from PIL import Image

    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(arr[..., c], dtype=np.float32), mode="F").resize(
                (size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=None
            )
        )
        for c in range(arr.shape[-1])
    ]
    return np.stack(planes, axis=-1)


def _png_depth(path):
    """(bit depth, colour type) from a PNG's IHDR chunk, or None for another format."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 26:
        return None
    return head[24], head[25]


def _tiff_dtype(path):
    """dtype of a TIFF's first image (tifffile), or None when tifffile cannot read it."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tif.series[0].dtype
    except Exception:  # not a TIFF tifffile understands: Pillow decides
        return None


def _high_bit_array(path, im):
    """Pixel values of a 16/32-bit PIL image (or a non-8-bit TIFF) as (H, W, C) and its bit depth."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        arr = tifffile.imread(path)
        if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
            arr = np.moveaxis(arr, 0, -1)  # planar configuration
    else:
        depth = _png_depth(path)
        if depth is not None and depth[0] == 16 and depth[1] in (2, 4, 6):
            raise ValueError(
                f"{path}: 16-bit colour PNG; Pillow reads it only at 8 bits. Save it as a 16-bit TIFF or a "
                "16-bit grey PNG."
            )
        arr = np.asarray(im)
        if depth is not None and depth[0] == 16 and arr.dtype != np.uint16:
            if arr.min() < 0 or arr.max() > 65535:  # pragma: no cover - Pillow decodes 16-bit PNG within range
                raise ValueError(f"{path}: 16-bit PNG decoded outside 0-65535.")
            arr = arr.astype(np.uint16)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"{path}: expected a grey or RGB image, got pixel array of shape {arr.shape}.")
    return arr


def _window_high_bit(arr, path, spec, bit_depth):
    """16-bit / float pixel values -> (float32 [0, 1] image, window label); uint16 kept with spec=None."""
    if spec is None:
        if arr.dtype != np.uint16:
            raise ValueError(
                f"{path}: window=None keeps 16-bit integers as they are, but this image is {arr.dtype}; "
                "give a window."
            )
        return arr, "none (uint16 values)"
    if spec == "auto":
        if arr.dtype not in (np.uint16, np.uint8):
            raise ValueError(
                f"{path}: {arr.dtype} image values have no stored bit depth to map from; give an explicit window "
                "(e.g. window='percentile' or (center, width))."
            )
        bits = bit_depth or arr.dtype.itemsize * 8
        top = int(arr.max())
        if top >= 2**bits:
            raise ValueError(f"{path}: bit_depth={bits} but the image holds the value {top} (>= 2**{bits}).")
        return (arr / float(2**bits - 1)).astype(np.float32), f"full range of {bits} bits [0, {2**bits - 1}]"
    kind, a, b, label = spec
    c, w = percentile_window(arr, a, b) if kind == "percentile" else (a, b)
    return window_to_unit(arr, c, w), label


def _read_image(path, size, window="auto", bit_depth=None):
    """One image file -> (array, info). 8-bit files: uint8 RGB as always; DICOM and 16-bit files:
    float32 [0, 1] after the window (see :func:`load_image_folder`)."""
    from PIL import Image

    spec = parse_window(window)
    if is_dicom(path):
        if spec is None:
            raise ValueError(
                f"{path}: DICOM files need a window (window='auto' uses the file's own); window=None is only "
                "for 16-bit PNG/TIFF files."
            )
        dcm = read_dicom(path, window=window)
        arr = dcm.pixels if dcm.pixels.ndim == 3 else dcm.pixels[..., None]
        if size is not None:
            arr = np.clip(_resize_float(arr, size), 0, 1).astype(np.float32)
        return arr, dict(format="DICOM", window=dcm.window["label"], inverted=dcm.inverted, dicom=dcm.meta)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            # Pillow opens a 16-bit RGB TIFF as 8-bit "RGB" (values truncated): ask tifffile for the dtype.
            tiff_high = path.suffix.lower() in (".tif", ".tiff") and _tiff_dtype(path) not in (None, np.uint8, bool)
            if mode in ("I;16", "I;16B", "I;16L", "I", "F") or tiff_high:
                raw = _high_bit_array(path, im)
                arr, label = _window_high_bit(raw, path, spec, bit_depth)
                if size is not None:
                    resized = _resize_float(arr.astype(np.float32), size)
                    arr = np.round(resized).astype(np.uint16) if arr.dtype == np.uint16 else np.clip(resized, 0, 1)
                return arr, dict(format="16-bit" if raw.dtype.itemsize == 2 else f"{raw.dtype}", window=label,
                                 inverted=False)
            if mode == "RGBA" or mode == "LA" or (mode == "P" and "transparency" in im.info):
                # Composite on white rather than dropping alpha, so transparent areas do not turn black.
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)
            im = im.convert("RGB")
            if size is not None:
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=None)
            return np.asarray(im, dtype=np.uint8), dict(format="8-bit", window="none (8-bit values)", inverted=False)
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"cannot read image file {path}: {exc}") from exc


def _read_manifest(root, manifest):
    """(frame, where) of the manifest to use, or (None, default path) when there is none."""
    import pandas as pd

    if manifest is None:
        where = root / "manifest.csv"
        if not where.is_file():
            return None, where
        return pd.read_csv(where, dtype=str, keep_default_na=False), where
    if isinstance(manifest, pd.DataFrame):
        return manifest.astype(str), "the manifest DataFrame"
    where = Path(manifest)
    if not where.is_file():
        raise ValueError(
            f"manifest {str(manifest)!r} is not a file; expected a CSV with relative_path and label columns."
        )
    return pd.read_csv(where, dtype=str, keep_default_na=False), where


def _class_dirs(root):
    """The class sub-folders of ``root``; a symlink back to the root (or above it) or onto another class
    folder is not a class (it would count every image again under a wrong label) and is skipped with a warning."""
    real_root = root.resolve()
    candidates = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    # real folders first, so a link onto one of them is the one reported
    candidates.sort(key=lambda d: d.is_symlink())
    seen, out = {}, []
    for d in candidates:
        real = d.resolve()
        if real == real_root or real in real_root.parents:
            warnings.warn(f"{d} links to {real}, which contains the image folder {root} itself; it is not a class "
                          "folder and is skipped.", UserWarning, stacklevel=4)
            continue
        if real in seen:
            warnings.warn(f"{d} links to the same folder as the class {seen[real]!r}; skipped (its images would be "
                          "counted twice under two labels).", UserWarning, stacklevel=4)
            continue
        seen[real] = d.name
        out.append(d)
    return sorted(out)


def _scan(root, extensions):
    rows = []
    for d in _class_dirs(root):
        for f in sorted(d.rglob("*")):
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in extensions:
                rows.append((f.relative_to(root).as_posix(), d.name))
    return rows


def load_image_folder(path, size=None, group_column="auto", *, extensions=IMAGE_EXTENSIONS, manifest=None,
                      window="auto", bit_depth=None, progress=True):
    """Load a folder of class sub-folders (``root/<class>/<image>``) with labels and CV groups.

    8-bit files (JPEG, PNG, TIFF, BMP) are returned as 8-bit RGB, as they are: grey images are copied
    into 3 channels (grey features take the channel mean, which equals the grey level, and CNNs need
    3 channels), palette images are expanded, and transparent images are composited on white.

    DICOM files (recognised by their ``DICM`` header) and 16-bit PNG/TIFF files go through an
    intensity window and are returned as float32 in [0, 1], grey ``(H, W, 1)`` (or RGB), never
    rounded to 8 bits: see ``window`` and ``bit_depth``. The policy and the windows applied are
    recorded in ``ImageFolder.input_policy``. Multi-frame DICOM files are refused (read them with
    :func:`~medfeat.datasets.read_dicom` and ``frame=``).

    Parameters
    ----------
    path : str or Path
        Root folder. If it holds a ``manifest.csv`` with columns ``relative_path`` and ``label``, the
        manifest defines the images, labels and groups; otherwise every image file (tif, tiff, png,
        jpg, jpeg, bmp, dcm, dicom) in a sub-folder is loaded, labelled with its sub-folder name.
    size : int or (int, int), optional
        Resize every image to ``size x size`` (or ``(height, width)``) with bilinear interpolation,
        e.g. to the input size of a CNN. Default: keep the native size.
    group_column : "auto", str, callable or None, default="auto"
        Where the groups for group-aware cross-validation come from. ``"auto"``: the first manifest
        column among patient_id, patient, subject_id, case_id, source_slide, slide_id, slide, group;
        a str: that manifest column; a callable: ``f(relative_path) -> group``; None: every image is its
        own group (its relative path without suffix). Without a manifest, a folder of DICOM files is
        grouped by ``"PatientID"`` (``"auto"``, or asked by name), else by ``"StudyInstanceUID"`` when
        some file has no patient ID (with a warning: a patient may have several studies). When no group
        is found, each image is its own group and a warning says that cross-validation will not be
        group-aware.
    extensions : tuple of str
        File suffixes (lower case) read when there is no manifest.
    manifest : str, Path or pandas.DataFrame, optional
        Use this manifest (same columns as ``manifest.csv``, paths relative to ``path``) instead of
        ``path/manifest.csv``; e.g. a subset of the images, or a folder you may not write into.
    window : "auto", None, str or tuple, default="auto"
        Intensity window of DICOM and 16-bit files (8-bit files are kept as they are). ``"auto"``: a
        DICOM file's own VOI LUT or window centre/width (else the full range of its stored bits), with
        rescale slope/intercept applied first and MONOCHROME1 inverted; a 16-bit PNG/TIFF is mapped
        from the full range of ``bit_depth`` bits, ``x / (2**bit_depth - 1)``. Otherwise a CT preset
        (``"lung"``, ``"mediastinum"``, ``"soft_tissue"``, ``"bone"``, ``"brain"``, ``"liver"``),
        ``(center, width)``, ``"CENTER,WIDTH"``, ``"percentile"`` or ``"percentile:LO:HI"`` (per image),
        applied to the modality values (HU for CT) or the stored 16-bit values. None: 16-bit files keep
        their uint16 values (DICOM then raises).
    bit_depth : int, optional
        Bits used by the values of 16-bit PNG/TIFF files for ``window="auto"``, e.g. 12 for 0-4095 data
        in a 16-bit container (default: 16); a larger value raises.
    progress : bool, default=True
        Show a tqdm bar while reading.

    Returns
    -------
    ImageFolder

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for cls in ("a", "b"):
    ...     (root / cls).mkdir()
    ...     Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / cls / "x.png")
    >>> ds = load_image_folder(root, size=4, group_column=None)
    >>> ds.images.shape, ds.labels.tolist(), ds.classes
    ((2, 4, 4, 3), ['a', 'b'], ['a', 'b'])
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"path must be a folder of class sub-folders, got {str(path)!r} (not a directory).")
    if size is not None:
        if isinstance(size, (int, np.integer)):
            size = (int(size), int(size))
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be a positive int or (height, width), got {size!r}.")
    if not (group_column is None or callable(group_column) or isinstance(group_column, str)):
        raise ValueError(
            f"group_column must be 'auto', a column name, a callable or None, got {group_column!r}."
        )
    parse_window(window)  # validated before any reading
    if bit_depth is not None and (
        isinstance(bit_depth, bool) or not isinstance(bit_depth, (int, np.integer)) or not 1 <= bit_depth <= 16
    ):
        raise ValueError(f"bit_depth must be None or an integer in [1, 16], got {bit_depth!r}.")

    frame, manifest = _read_manifest(root, manifest)
    used_column = None
    if frame is not None:
        missing = {"relative_path", "label"} - set(frame.columns)
        if missing:
            raise ValueError(
                f"{manifest}: missing column(s) {sorted(missing)}; expected relative_path and label."
            )
        rel = frame["relative_path"].tolist()
        labels = frame["label"].to_numpy(dtype=str)
        if isinstance(group_column, str) and group_column != "auto":
            if group_column not in frame.columns:
                raise ValueError(
                    f"group_column {group_column!r} is not a column of {manifest}; "
                    f"columns: {list(frame.columns)}."
                )
            used_column = group_column
        elif group_column == "auto":
            used_column = next((c for c in _AUTO_GROUP_COLUMNS if c in frame.columns), None)
        groups = frame[used_column].to_numpy(dtype=str) if used_column else None
    else:
        if isinstance(group_column, str) and group_column not in ("auto",) + DICOM_GROUP_KEYS:
            raise ValueError(
                f"group_column {group_column!r} needs a manifest.csv in {root}, which is absent "
                f"(without one, only {list(DICOM_GROUP_KEYS)} of DICOM files can be named)."
            )
        rows = _scan(root, tuple(e.lower() for e in extensions))
        rel = [r for r, _ in rows]
        labels = np.array([c for _, c in rows], dtype=str)
        groups = None
    if len(rel) == 0:
        raise ValueError(
            f"no images found in {root}: expected class sub-folders holding {', '.join(extensions)} files."
        )
    if len(set(rel)) != len(rel):
        raise ValueError(f"{manifest}: relative_path has duplicate entries.")

    if callable(group_column):
        groups = np.array([str(group_column(r)) for r in rel], dtype=str)

    paths = [(root / r).resolve() for r in rel]
    for p in paths:
        if not p.is_file():
            raise ValueError(f"image listed in {manifest} not found: {p}")

    iterator = paths
    if progress:
        from .._checks import progress_bar

        iterator = progress_bar(paths, desc=f"reading {root.name}", unit="img")
    read = [_read_image(p, size, window, bit_depth) for p in iterator]
    images = [im for im, _ in read]
    info = [inf for _, inf in read]
    if len({(im.shape, im.dtype) for im in images}) == 1:
        images = np.stack(images)
    formats = Counter(i["format"] for i in info)
    if window not in ("auto", None) and formats.get("8-bit"):
        warnings.warn(
            f"{root}: window={window!r} applies to DICOM and 16-bit files; {formats['8-bit']} 8-bit file(s) are "
            "kept as they are.",
            UserWarning,
            stacklevel=2,
        )
    if groups is None and not callable(group_column) and group_column is not None:
        groups, used_column = _dicom_groups(info, group_column, root)
    if groups is None:
        groups = np.array([str(Path(r).with_suffix("")) for r in rel], dtype=str)
        if group_column == "auto":
            warnings.warn(
                f"{root}: no patient/slide groups found (no manifest.csv with a column among "
                f"{list(_AUTO_GROUP_COLUMNS)}, and not DICOM files that all carry a PatientID or StudyInstanceUID); "
                "each image is its own group, so cross-validation will NOT be group-aware and images of one "
                "patient or slide may sit on both sides of a split.",
                UserWarning,
                stacklevel=2,
            )
    policy = dict(
        window=window if window is None or isinstance(window, str) else list(window),
        bit_depth=bit_depth,
        formats=dict(sorted(formats.items())),
        windows=dict(sorted(Counter(i["window"] for i in info).items())),
        inverted_monochrome1=sum(bool(i["inverted"]) for i in info),
        dtypes=dict(sorted(Counter(str(im.dtype) for im, _ in read).items())),
    )
    return ImageFolder(
        images=images,
        labels=labels,
        groups=groups,
        paths=paths,
        classes=sorted(set(labels.tolist())),
        group_column=used_column,
        root=root.resolve(),
        input_policy=policy,
        image_info=info,
    )


def _dicom_groups(info, group_column, root):
    """Groups from DICOM attributes when every image is a DICOM file: (groups, attribute) or (None, None)."""
    dicom = [i.get("dicom") for i in info]
    if group_column in DICOM_GROUP_KEYS:
        keys = (group_column,)
    else:
        keys = DICOM_GROUP_KEYS
    for k, key in enumerate(keys):
        values = [d.get(key, "") if d is not None else "" for d in dicom]
        if all(values):
            if k > 0:
                warnings.warn(
                    f"{root}: some DICOM files have no PatientID; grouping by {key} instead (a patient with "
                    "several studies may then sit on both sides of a split).",
                    UserWarning,
                    stacklevel=3,
                )
            return np.array(values, dtype=str), key
    if group_column in DICOM_GROUP_KEYS:
        missing = sum(1 for d in dicom if d is None or not d.get(group_column))
        raise ValueError(f"group_column={group_column!r}: {missing} image(s) are not DICOM files carrying it.")
    return None, None
