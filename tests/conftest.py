"""Project-wide test fixtures: seeded RNG and the optional real data beside the checkout."""

import os
from pathlib import Path

import numpy as np
import pytest

# Tests must never download: make any accidental hub access fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TORCH_HOME", str(Path(__file__).parent / ".torch-home-unused"))

# Scripts that produced reference numbers (they need R or Octave outputs) are not tests.
collect_ignore_glob = ["*/data/*.py"]

SHARED_DATA = Path(os.environ.get("MEDFEAT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data (real labelled data); skips when it is not beside the checkout."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real labelled data not found at {SHARED_DATA} (set MEDFEAT_SHARED_DATA)")
    return SHARED_DATA
