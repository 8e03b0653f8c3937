"""Hypothesis profiles (MINIGRAD_HYPOTHESIS_PROFILE=ci|dev|thorough) and the backend fixture."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import minigrad as mg
from minigrad.testing import available_devices

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                      HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=12, derandomize=True, **_common)  # the same examples every run
settings.register_profile("dev", max_examples=40, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
settings.load_profile(os.environ.get("MINIGRAD_HYPOTHESIS_PROFILE", "ci"))

DEVICES = available_devices()


@pytest.fixture(params=DEVICES)
def device(request):
    """Runs a test on every available backend: NumPy always, CuPy when a GPU is present."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    mg.manual_seed(0)
    np.random.seed(0)
    yield
