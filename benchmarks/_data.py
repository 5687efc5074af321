"""Where the benchmarks find the real labelled data: ../shared/data beside the checkout, or $MEDFEAT_DATA.

medfeat's fetchers verify every file of that folder against the pinned checksums and never download
from it (``download_if_missing=False``), so a benchmark runs on exactly the files the README cites.
"""

import os
import sys
from pathlib import Path


def data_home():
    """The data home holding ``kather2016_crc_texture/`` and ``kermany_cxr_pneumonia/``, or exit with why."""
    env = os.environ.get("MEDFEAT_DATA")
    home = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not home.is_dir():
        sys.exit(f"real labelled data not found at {home} (set MEDFEAT_DATA to a folder that holds it)")
    return home


def dataset_folder(name):
    """Checked folder of one data set (``kather2016_crc_texture`` or ``kermany_cxr_pneumonia``)."""
    from medfeat.datasets import fetch_kather2016, fetch_kermany2018

    fetch = {"kather2016_crc_texture": fetch_kather2016, "kermany_cxr_pneumonia": fetch_kermany2018}[name]
    home = data_home()
    fetch(data_home=home, download_if_missing=False, return_paths=True, progress=False)  # checksums
    return home / name
