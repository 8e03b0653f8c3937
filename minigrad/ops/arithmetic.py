"""+ − × ÷, negation and powers, with NumPy broadcasting undone in backward (``unbroadcast``).

A Python scalar operand takes the other operand's dtype and device (``Function.__call__`` converts it).
"""
from minigrad.core import Function, Tensor, as_tensor
from minigrad.ops.shape import add_tangents, unbroadcast


def _pair(a, b):
    """Both operands as Tensors, for ops that look at shapes before the call (matmul, where)."""
    if not isinstance(a, Tensor):
        a = as_tensor(a, b if isinstance(b, Tensor) else None)
    return a, (b if isinstance(b, Tensor) else as_tensor(b, a))


class Add(Function):
    needs_input_data = False

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        a, b = self.inputs
        return unbroadcast(gy, a), unbroadcast(gy, b)

    def jvp(self, ta, tb):
        return add_tangents(ta, tb)


class Sub(Function):
    needs_input_data = False

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        a, b = self.inputs
        return unbroadcast(gy, a), (unbroadcast(-gy, b) if b._requires_grad else None)

    def jvp(self, ta, tb):
        return add_tangents(ta, None if tb is None else -tb)


class Mul(Function):
    needs_input_data = "other"

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        return (unbroadcast(gy * b, a) if a._requires_grad else None,
                unbroadcast(gy * a, b) if b._requires_grad else None)

    def jvp(self, ta, tb):
        a, b = self.inputs
        return add_tangents(None if ta is None else ta * b, None if tb is None else a * tb)


class Div(Function):
    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = gy / b
        return (unbroadcast(ga, a) if a._requires_grad else None,
                unbroadcast(-ga * a / b, b) if b._requires_grad else None)

    def jvp(self, ta, tb):
        a, b = self.inputs
        return add_tangents(None if ta is None else ta / b, None if tb is None else -tb * self.output() / b)


class Neg(Function):
    needs_input_data = False

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy

    def jvp(self, tx):
        return -tx


class Pow(Function):
    """a ** b; d/da = b a^(b-1), d/db = a^b log a (only computed when b requires grad)."""
    saves_output = True

    def forward(self, a, b):
        return a ** b

    def backward(self, gy):
        a, b = self.inputs
        ga = unbroadcast(gy * b * a ** (b - 1), a) if a._requires_grad else None
        gb = unbroadcast(gy * self.output() * log(a), b) if b._requires_grad else None
        return ga, gb

    def jvp(self, ta, tb):
        a, b = self.inputs
        return add_tangents(None if ta is None else ta * b * a ** (b - 1),
                            None if tb is None else tb * self.output() * log(a))


def add(a, b):
    return Add()(a, b)


def sub(a, b):
    return Sub()(a, b)


def mul(a, b):
    return Mul()(a, b)


def div(a, b):
    return Div()(a, b)


def neg(x):
    return Neg()(x)


def pow(a, b):
    return Pow()(a, b)


from minigrad.ops.elementwise import log  # noqa: E402
