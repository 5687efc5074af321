"""Dataset helpers: folder-of-classes loader, checksum-verified fetchers of real data, sample slides.

Examples
--------
>>> from medfeat.datasets import load_image_folder, shared_data_dir
>>> callable(load_image_folder)
True
"""

from .fetchers import (
    OPENSLIDE_TESTDATA,
    DataIntegrityError,
    fetch_kather2016,
    fetch_kermany2018,
    fetch_openslide_testdata,
    get_data_home,
)
from .folder import IMAGE_EXTENSIONS, ImageFolder, load_image_folder, shared_data_dir
from .samples import cmu_small_region

__all__ = [
    "DataIntegrityError",
    "IMAGE_EXTENSIONS",
    "ImageFolder",
    "OPENSLIDE_TESTDATA",
    "cmu_small_region",
    "fetch_kather2016",
    "fetch_kermany2018",
    "fetch_openslide_testdata",
    "get_data_home",
    "load_image_folder",
    "shared_data_dir",
]
