"""Hypothesis strategies and declarative op specs, so users test their own Functions as minigrad tests its own.

    from hypothesis import given
    from minigrad.testing import tensors
    @given(tensors(shape=(3, 4)))
    def test_my_op(x):
        assert mg.gradcheck(my_op, [x])
"""
import os

from minigrad import cuda
from minigrad.data import DatasetNotFound
from minigrad.testing.strategies import (arrays, broadcastable_shapes, shapes, tensors,  # noqa: F401
                                         away_from, grid, positive)
from minigrad.testing.specs import (OpSpec, check_forward, check_grad, check_gradgrad, check_jvp,  # noqa: F401
                                    check_jvp_fn, run_spec, spec_inputs, spec_tests)


def available_devices():
    """The devices a test can run on: ``["cpu"]``, plus ``"cuda"`` when CuPy sees a GPU."""
    return ["cpu"] + (["cuda"] if cuda.is_available() else [])


DOWNLOAD_FAILED = "MINIGRAD_TEST_DOWNLOAD_FAILED"  # environment: why the data sets could not be fetched, if so


def load_or_skip(fn, **kw):
    """``fn(download=True, **kw)``; a pytest skip, saying why, only when the data set cannot be downloaded
    (offline: the test session's first fetch failed and left its reason in ``DOWNLOAD_FAILED``)."""
    import pytest
    try:
        return fn(download=DOWNLOAD_FAILED not in os.environ, **kw)
    except DatasetNotFound as e:
        if DOWNLOAD_FAILED not in os.environ:
            raise
        pytest.skip(f"the data sets could not be downloaded here: {os.environ[DOWNLOAD_FAILED]} ({e})")


def torch_or_skip():
    """The ``torch`` module, or a pytest skip when PyTorch (the oracle some tests compare with) is not installed."""
    import pytest
    return pytest.importorskip("torch", reason="PyTorch is not installed: the PyTorch oracle comparison is skipped")
