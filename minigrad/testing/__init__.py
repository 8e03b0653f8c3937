"""Hypothesis strategies and declarative op specs, so users test their own Functions as minigrad tests its own.

    from hypothesis import given
    from minigrad.testing import tensors
    @given(tensors(shape=(3, 4)))
    def test_my_op(x):
        assert mg.gradcheck(my_op, [x])
"""
from minigrad.testing.strategies import (arrays, broadcastable_shapes, shapes, tensors,  # noqa: F401
                                         away_from, grid, positive)
from minigrad.testing.specs import (OpSpec, check_forward, check_grad, check_gradgrad, check_jvp,  # noqa: F401
                                    check_jvp_fn, run_spec, spec_inputs, spec_tests)
