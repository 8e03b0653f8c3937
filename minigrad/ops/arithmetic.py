"""+ − × ÷, negation and powers, with NumPy broadcasting undone in backward (``sum_to`` the input's shape).

A Python scalar operand takes the other operand's dtype and device (``Function.__call__`` converts it).
"""
from minigrad.core import Function
from minigrad.ops.elementwise import log
from minigrad.ops.shape import add_tangents, sum_to


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        need_a, need_b = self.needs_input_grad
        return sum_to(gy, self.input_shape(0)) if need_a else None, sum_to(gy, self.input_shape(1)) if need_b else None

    def jvp(self, ta, tb):
        return add_tangents(ta, tb)


def add(a, b):
    return Add()(a, b)


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        need_a, need_b = self.needs_input_grad
        return sum_to(gy, self.input_shape(0)) if need_a else None, sum_to(-gy, self.input_shape(1)) if need_b else None

    def jvp(self, ta, tb):
        return add_tangents(ta, None if tb is None else -tb)


def sub(a, b):
    return Sub()(a, b)


class Mul(Function):
    """a · b: each input is read only for the other's gradient, so only that one is kept."""

    def forward(self, a, b):
        need_a, need_b = self.needs_input_grad
        self.save_for_backward(b if need_a else None, a if need_b else None)
        return a * b

    def backward(self, gy):
        b, a = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        return (sum_to(gy * b, self.input_shape(0)) if need_a else None,
                sum_to(gy * a, self.input_shape(1)) if need_b else None)

    def jvp(self, ta, tb):
        a, b = self.inputs
        return add_tangents(None if ta is None else ta * b, None if tb is None else a * tb)


def mul(a, b):
    return Mul()(a, b)


class Div(Function):
    """a / b: ∂a = gy / b, ∂b = −gy · a / b²."""

    def forward(self, a, b):
        self.save_for_backward(a if self.needs_input_grad[1] else None, b)
        return a / b

    def backward(self, gy):
        a, b = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        ga = gy / b
        return (sum_to(ga, self.input_shape(0)) if need_a else None,
                sum_to(-ga * a / b, self.input_shape(1)) if need_b else None)

    def jvp(self, ta, tb):
        a, b = self.inputs
        return add_tangents(None if ta is None else ta / b, None if tb is None else -tb * self.output() / b)


def div(a, b):
    return Div()(a, b)


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy

    def jvp(self, tx):
        return -tx


def neg(x):
    return Neg()(x)


class Pow(Function):
    """a ** b; ∂a = b a^(b−1), ∂b = a^b log a (the output is kept only when b wants a gradient)."""

    def forward(self, a, b):
        y = a ** b
        self.save_for_backward(a, b, y if self.needs_input_grad[1] else None)
        return y

    def backward(self, gy):
        a, b, y = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        return (sum_to(gy * b * a ** (b - 1), self.input_shape(0)) if need_a else None,
                sum_to(gy * y * log(a), self.input_shape(1)) if need_b else None)

    def jvp(self, ta, tb):
        a, b = self.inputs
        return add_tangents(None if ta is None else ta * b * a ** (b - 1),
                            None if tb is None else tb * self.output() * log(a))


def pow(a, b):
    return Pow()(a, b)
