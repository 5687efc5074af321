"""Dataset helpers: folder-of-classes loader (8-bit, 16-bit and DICOM images), DICOM reader,
checksum-verified fetchers of real data, sample slides.

Examples
--------
>>> from medfeat.datasets import load_image_folder
>>> callable(load_image_folder)
True
"""

from .dicom import DICOM_EXTENSIONS, DicomImage, is_dicom, read_dicom, write_dicom
from .fetchers import (
    OPENSLIDE_TESTDATA,
    DataIntegrityError,
    fetch_kather2016,
    fetch_kermany2018,
    fetch_openslide_testdata,
    get_data_home,
)
from .folder import DICOM_GROUP_KEYS, IMAGE_EXTENSIONS, ImageFolder, load_image_folder
from .samples import cmu_small_region

__all__ = [
    "DICOM_EXTENSIONS",
    "DICOM_GROUP_KEYS",
    "DataIntegrityError",
    "DicomImage",
    "IMAGE_EXTENSIONS",
    "ImageFolder",
    "OPENSLIDE_TESTDATA",
    "cmu_small_region",
    "fetch_kather2016",
    "fetch_kermany2018",
    "fetch_openslide_testdata",
    "get_data_home",
    "is_dicom",
    "load_image_folder",
    "read_dicom",
    "write_dicom",
]
