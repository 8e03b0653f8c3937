"""A Tensor inside a Function's forward (the PyTorch habit) is an error that says forward receives arrays."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.core import Function


class ReturnsTensor(Function):
    def forward(self, x):
        return mg.exp(mg.tensor(x))  # minigrad ops inside forward: the output is a Tensor


class UsesTensor(Function):
    def __init__(self, w):
        self.w = w  # a Tensor kept on the op and used in forward

    def forward(self, x):
        return np.exp(self.w) * x


class Fine(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy * 2


@pytest.mark.parametrize("op", [ReturnsTensor(), UsesTensor(mg.ones(3))], ids=["returns", "uses"])
def test_a_tensor_in_forward_says_forward_receives_arrays(op):
    with pytest.raises(TypeError, match=r"\.forward met a Tensor .*forward receives NumPy/CuPy arrays and must "
                                        r"return arrays.*no ctx and no \.apply"):
        op(mg.ones(3, requires_grad=True))


def test_other_type_errors_pass_through_unchanged():
    class Broken(Function):
        def forward(self, x):
            return x + "a"
    with pytest.raises(TypeError) as info:
        Broken()(mg.ones(2))
    assert "forward met a Tensor" not in str(info.value)
    y = Fine()(mg.ones(2, requires_grad=True))
    y.sum().backward()
