"""Dataset helpers: folder-of-classes loader and locators of real sample data.

Examples
--------
>>> from medfeat.datasets import load_image_folder, shared_data_dir
>>> callable(load_image_folder)
True
"""

from .folder import IMAGE_EXTENSIONS, ImageFolder, load_image_folder, shared_data_dir
from .samples import cmu_small_region

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder", "cmu_small_region", "load_image_folder", "shared_data_dir"]
