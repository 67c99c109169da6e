import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

# CI runs the property tests on a fixed example sequence, so a stop cannot fail on a draw that
# a local run never saw; local runs (no CI variable) keep exploring fresh random examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED_DATA = Path(os.environ.get("CRYOPICK_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def rng():
    return np.random.default_rng(0)
