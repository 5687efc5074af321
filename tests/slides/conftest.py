"""Fixtures for the slides tests: a small synthetic JPEG slide shared by several test files."""

import pytest

from medfeat.slides import write_synthetic_slide


@pytest.fixture(scope="session")
def synthetic_slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic") / "synthetic.tif"
    return write_synthetic_slide(path, size=(4096, 3072), mpp=0.25, lesions=3, seed=3)
