"""mg.detect_anomaly: the first NaN/Inf raises FloatingPointError naming the op and the user's line."""
import inspect
import os
import warnings

import numpy as np
import pytest

import minigrad as mg

HERE = os.path.basename(__file__)


def _line_of(marker):
    """The line number in this file of the line that contains ``marker``."""
    lines = inspect.getsource(inspect.getmodule(_line_of)).splitlines()
    return next(i for i, text in enumerate(lines, 1) if marker in text and "_line_of" not in text)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's own "invalid value" warnings
        yield


def test_nan_in_forward_names_op_and_line():
    x = mg.tensor([-1.0, 2.0], requires_grad=True)
    with pytest.raises(FloatingPointError) as info:
        with mg.detect_anomaly():
            mg.log(x)  # forward-nan-here
    msg = str(info.value)
    assert "Log.forward" in msg and "output 0" in msg
    assert f"{HERE}:{_line_of('forward-nan-here')}" in msg and "mg.log(x)" in msg


def test_nan_in_forward_without_grad_is_caught_too():
    with pytest.raises(FloatingPointError, match="Log.forward"):
        with mg.detect_anomaly(), mg.no_grad():
            mg.log(mg.tensor([-1.0]))


def test_inf_in_backward_names_op_and_the_line_that_created_it():
    x = mg.tensor([0.0, 4.0], requires_grad=True)
    with pytest.raises(FloatingPointError) as info:
        with mg.detect_anomaly():
            y = mg.sqrt(x)  # sqrt-created-here
            (y * 3.0).sum().backward()
    msg = str(info.value)
    assert "Sqrt.backward" in msg and "gradient of input 0" in msg  # not Div: the op inside Sqrt's backward
    assert f"{HERE}:{_line_of('sqrt-created-here')}" in msg


def test_backward_when_forward_ran_outside_the_context_points_at_backward():
    x = mg.tensor([0.0], requires_grad=True)
    y = mg.sqrt(x).sum()
    with pytest.raises(FloatingPointError, match="Sqrt.backward.*outside detect_anomaly") as info:
        with mg.detect_anomaly():
            y.backward()  # backward-called-here
    assert f"{HERE}:{_line_of('backward-called-here')}" in str(info.value)


def test_user_line_is_found_through_library_layers():
    """The reported line is the caller's, even when the op runs deep inside minigrad (F.softmax -> exp...)."""
    x = mg.tensor([[np.inf, 1.0]], requires_grad=True)
    with pytest.raises(FloatingPointError) as info:
        with mg.detect_anomaly():
            mg.functional.log_softmax(x, axis=-1)  # library-call-here
    assert f"{HERE}:{_line_of('library-call-here')}" in str(info.value)


class _SafeInverse(mg.Function):
    """1/x with 0 at x = 0; its backward makes -inf at x = 0 internally, then masks it away."""

    def forward(self, x):
        self.save_for_backward(x)
        return np.where(x != 0, 1 / np.where(x != 0, x, 1), 0).astype(x.dtype)

    def backward(self, gy):
        x, = self.saved_tensors
        return mg.where(x != 0, -gy / (x * x), mg.zeros_like(x))


def test_harmless_inf_inside_a_backward_is_not_reported():
    """Anomaly mode judges the gradient a backward returns, not the ops it runs on the way."""
    x = mg.tensor([0.0, 2.0], requires_grad=True)
    with mg.detect_anomaly():
        _SafeInverse()(x).sum().backward()
    assert x.grad.numpy().tolist() == [0.0, -0.25]


def test_outside_the_context_nothing_is_raised_and_the_flag_is_restored():
    x = mg.tensor([-1.0, 0.0], requires_grad=True)
    y = mg.log(x)
    assert np.isnan(y.numpy()[0])
    z = mg.sqrt(mg.tensor([0.0], requires_grad=True))
    z.sum().backward()
    with pytest.raises(FloatingPointError):
        with mg.detect_anomaly():
            mg.log(x)
    mg.log(x)  # the flag is off again after the exception
    with mg.detect_anomaly():
        pass
    mg.log(x)


def test_integer_outputs_and_finite_values_pass():
    with mg.detect_anomaly():
        x = mg.tensor([1.0, 2.0], requires_grad=True)
        (mg.exp(x) * x).sum().backward()
        mg.argmax(x)
    assert np.all(np.isfinite(x.grad.numpy()))
