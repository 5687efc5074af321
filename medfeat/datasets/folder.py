"""Folder-of-classes image loader and the locator of the shared real data beside the checkout."""

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder", "load_image_folder", "shared_data_dir"]

IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff")

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
    images : ndarray of shape (N, H, W, 3) uint8, or list of (H, W, 3) uint8 arrays
        A stacked array when all images have one size (always with ``size``), else a list.
    labels : ndarray of str, shape (N,)
        Class name of each image.
    groups : ndarray of str, shape (N,)
        Group (patient / slide) of each image, for group-aware cross-validation.
    paths : list of pathlib.Path
        Absolute path of each image.
    classes : list of str
        Sorted class names.
    group_column : str or None
        Manifest column the groups came from (None: file stems, or a callable).
    """

    images: object
    labels: np.ndarray
    groups: np.ndarray
    paths: list
    classes: list
    group_column: object = None
    root: Path = field(default=None)

    def __len__(self):
        return len(self.labels)


def shared_data_dir():
    """Directory of the real labelled data shared beside the checkout, or None.

    Looks at ``$MEDFEAT_SHARED_DATA`` first, then ``../shared/data`` beside the repository that holds
    this package, then ``../shared/data`` relative to the current directory.

    Returns
    -------
    pathlib.Path or None

    Examples
    --------
    >>> d = shared_data_dir()
    >>> d is None or d.is_dir()
    True
    """
    env = os.environ.get("MEDFEAT_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2].parent / "shared" / "data")
    candidates.append(Path.cwd().parent / "shared" / "data")
    for cand in candidates:
        if cand.is_dir():
            return cand.resolve()
    return None


def _read_image(path, size):
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                raise ValueError(
                    f"{path}: {mode} (16-bit / 32-bit) images are not converted automatically, because their "
                    "intensity range (12-bit? windowed?) cannot be guessed; convert them to 8-bit first."
                )
            if mode == "RGBA" or mode == "LA" or (mode == "P" and "transparency" in im.info):
                # Composite on white rather than dropping alpha, so transparent areas do not turn black.
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)
            im = im.convert("RGB")
            if size is not None:
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=None)
            return np.asarray(im, dtype=np.uint8)
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


def _scan(root, extensions):
    rows = []
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    for d in class_dirs:
        for f in sorted(d.rglob("*")):
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in extensions:
                rows.append((f.relative_to(root).as_posix(), d.name))
    return rows


def load_image_folder(path, size=None, group_column="auto", *, extensions=IMAGE_EXTENSIONS, manifest=None,
                      progress=False):
    """Load a folder of class sub-folders (``root/<class>/<image>``) with labels and CV groups.

    Every image is returned as 8-bit RGB: grey images are copied into 3 channels (grey features take
    the channel mean, which equals the grey level, and CNNs need 3 channels), palette images are
    expanded, and transparent images are composited on white. 16/32-bit images raise ``ValueError``
    instead of being rescaled by a guess.

    Parameters
    ----------
    path : str or Path
        Root folder. If it holds a ``manifest.csv`` with columns ``relative_path`` and ``label``, the
        manifest defines the images, labels and groups; otherwise every image file (tif, tiff, png,
        jpg, jpeg, bmp) in a sub-folder is loaded, labelled with its sub-folder name.
    size : int or (int, int), optional
        Resize every image to ``size x size`` (or ``(height, width)``) with bilinear interpolation,
        e.g. to the input size of a CNN. Default: keep the native size.
    group_column : "auto", str, callable or None, default="auto"
        Where the groups for group-aware cross-validation come from. ``"auto"``: the first manifest
        column among patient_id, patient, subject_id, case_id, source_slide, slide_id, slide, group;
        a str: that manifest column; a callable: ``f(relative_path) -> group``; None: every image is its
        own group (its relative path without suffix). When no group is found (``"auto"`` without a
        manifest or without a known column), each image is its own group and a warning says that
        cross-validation will not be group-aware.
    extensions : tuple of str
        File suffixes (lower case) read when there is no manifest.
    manifest : str, Path or pandas.DataFrame, optional
        Use this manifest (same columns as ``manifest.csv``, paths relative to ``path``) instead of
        ``path/manifest.csv``; e.g. a subset of the images, or a folder you may not write into.
    progress : bool, default=False
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
        if isinstance(group_column, str) and group_column != "auto":
            raise ValueError(
                f"group_column {group_column!r} needs a manifest.csv in {root}, which is absent."
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
    elif groups is None:
        groups = np.array([str(Path(r).with_suffix("")) for r in rel], dtype=str)
        if group_column == "auto":
            warnings.warn(
                f"{root}: no patient/slide groups found (no manifest.csv with a column among "
                f"{list(_AUTO_GROUP_COLUMNS)}); each image is its own group, so cross-validation will NOT be "
                "group-aware and images of one patient or slide may sit on both sides of a split.",
                UserWarning,
                stacklevel=2,
            )

    paths = [(root / r).resolve() for r in rel]
    for p in paths:
        if not p.is_file():
            raise ValueError(f"image listed in {manifest} not found: {p}")

    iterator = paths
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(paths, desc=f"reading {root.name}", unit="img")
    images = [_read_image(p, size) for p in iterator]
    if len({im.shape for im in images}) == 1:
        images = np.stack(images)
    return ImageFolder(
        images=images,
        labels=labels,
        groups=groups,
        paths=paths,
        classes=sorted(set(labels.tolist())),
        group_column=used_column,
        root=root.resolve(),
    )
