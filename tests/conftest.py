"""Hypothesis profiles (MINIGRAD_HYPOTHESIS_PROFILE=ci|dev|thorough), the backend fixture, and the data sets: fetched
once into the cache ($MINIGRAD_DATA, default ~/.cache/minigrad) before the tests start, as the README's first
command does."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import minigrad as mg
from minigrad.testing import DOWNLOAD_FAILED, available_devices

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                      HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=12, derandomize=True, **_common)  # the same examples every run
settings.register_profile("dev", max_examples=40, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
settings.load_profile(os.environ.get("MINIGRAD_HYPOTHESIS_PROFILE", "ci"))

# MINIGRAD_TEST_DEVICE=sim runs every test that takes the `device` fixture on the strict simulated GPU
# (minigrad.testing.simdevice) instead of the host: CuPy's rules without CuPy (.ci/sim-device).
SIMULATED = os.environ.get("MINIGRAD_TEST_DEVICE", "") == "sim"
if SIMULATED:
    from minigrad.testing import simdevice
    simdevice.install()
    DEVICES = [os.environ.get("MINIGRAD_SIM_DEVICE", "sim:0")]
else:
    DEVICES = available_devices()


def pytest_configure(config):
    """Fetch the data sets once, in the main process (xdist workers inherit the result through the environment)."""
    if hasattr(config, "workerinput") or DOWNLOAD_FAILED in os.environ:
        return
    from minigrad.data import DownloadError, download
    try:
        download(quiet=True)
    except DownloadError as e:
        os.environ[DOWNLOAD_FAILED] = str(e)


@pytest.fixture(params=DEVICES)
def device(request):
    """Runs a test on every available backend: NumPy always, CuPy when a GPU is present, or only the simulated
    GPU under MINIGRAD_TEST_DEVICE=sim."""
    return request.param


def pytest_collection_modifyitems(config, items):
    """Mark the tests that take the `device` fixture, so `-m device` selects what the simulated GPU runs."""
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)


@pytest.fixture(autouse=True)
def _seed():
    mg.manual_seed(0)
    np.random.seed(0)
    yield
