"""Hypothesis strategies and declarative op specs, so users test their own Functions as minigrad tests its own.

    from hypothesis import given
    from minigrad.testing import tensors
    @given(tensors(shape=(3, 4)))
    def test_my_op(x):
        assert mg.gradcheck(my_op, [x])
"""
from minigrad import cuda
from minigrad.testing.strategies import (arrays, broadcastable_shapes, shapes, tensors,  # noqa: F401
                                         away_from, grid, positive)
from minigrad.testing.specs import (OpSpec, check_forward, check_grad, check_gradgrad, run_spec,  # noqa: F401
                                    spec_inputs, spec_tests)


def available_devices():
    """The devices a test can run on: ``["cpu"]``, plus ``"cuda"`` when CuPy sees a GPU."""
    return ["cpu"] + (["cuda"] if cuda.is_available() else [])


def torch_or_skip():
    """The ``torch`` module, or a pytest skip when PyTorch (the oracle some tests compare with) is not installed."""
    import pytest
    return pytest.importorskip("torch", reason="PyTorch is not installed: the PyTorch oracle comparison is skipped")
