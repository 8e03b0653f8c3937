"""mg.gradcheck itself: NaN/Inf on either side fails and says which, steps follow the input's scale,
Richardson-refined differences are accurate enough for rtol=1e-6."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.core import Function
from minigrad.gradcheck import GradcheckError


class _NanBackward(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy * float("nan")


def test_nan_in_the_analytic_jacobian_fails_and_says_so():
    x = mg.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    with pytest.raises(GradcheckError, match="analytic gradient .* non-finite"):
        mg.gradcheck(lambda t: _NanBackward()(t), [x])
    assert mg.gradcheck(lambda t: _NanBackward()(t), [x], raise_exception=False) is False


def test_nan_in_the_numeric_jacobian_fails_and_says_so():
    """The old check took nanmax over the differences, so a NaN finite difference passed silently."""
    x = mg.tensor([0.5, 2.0], dtype="float64", requires_grad=True)
    with np.errstate(all="ignore"), pytest.raises(GradcheckError, match="numeric gradient .* non-finite"):
        mg.gradcheck(lambda t: mg.log(t - 1.0), [x])  # log of a negative number: NaN both sides of 0.5


def test_inf_in_the_numeric_jacobian_fails():
    x = mg.tensor([0.0, 1.0], dtype="float64", requires_grad=True)
    with np.errstate(all="ignore"), pytest.raises(GradcheckError, match="non-finite"):
        mg.gradcheck(lambda t: 1 / t, [x])


def test_step_follows_the_input_scale():
    """At |x| = 1e8 an absolute step of 1e-6 is below float64 resolution; the relative step is not."""
    x = mg.tensor([1e8, -3e7, 2.0], dtype="float64", requires_grad=True)
    assert mg.gradcheck(lambda t: t * t, [x], rtol=1e-7, atol=0)


@pytest.mark.parametrize("fn", [mg.exp, mg.sin, mg.tanh, lambda t: t ** 3, mg.sigmoid])
def test_richardson_differences_reach_1e9(fn):
    x = mg.tensor(np.linspace(-2, 2, 7), dtype="float64", requires_grad=True)
    for _, J, Ja in mg.gradcheck_jacobians(fn, [x], eps=1e-4):
        assert np.max(np.abs(J - Ja) / np.maximum(np.abs(Ja), 1e-3)) < 1e-9


def test_a_1e5_error_fails_at_rtol_1e6_and_passes_at_pytorch_default():
    class Scaled(Function):
        def forward(self, x):
            return x.copy() * 3

        def backward(self, gy):
            return gy * (3 * (1 + 1e-5))
    x = mg.tensor([0.3, -1.2], dtype="float64", requires_grad=True)
    assert mg.gradcheck(lambda t: Scaled()(t), [x])  # the default rtol=1e-3 cannot see it
    with pytest.raises(GradcheckError, match="worst element"):
        mg.gradcheck(lambda t: Scaled()(t), [x], eps=1e-4, atol=1e-9, rtol=1e-6)


def test_fast_mode_is_refined_and_strict_too():
    class Scaled(Function):
        def forward(self, x):
            self.save_for_backward(x)
            return x * x

        def backward(self, gy):
            return gy * self.saved_tensors[0] * (2 * (1 + 1e-5))
    x = mg.tensor(np.linspace(0.5, 2, 6), dtype="float64", requires_grad=True)
    assert mg.gradcheck(lambda t: t * t, [x], mode="fast", eps=1e-4, atol=1e-9, rtol=1e-6)
    with pytest.raises(GradcheckError):
        mg.gradcheck(lambda t: Scaled()(t), [x], mode="fast", eps=1e-4, atol=1e-9, rtol=1e-6)
