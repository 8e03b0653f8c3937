"""Element-wise math and activations. Each backward is written with minigrad ops (any order of derivative).

Subgradients at kinks follow PyTorch: relu'(0) = 0, abs'(0) = 0, clip passes the gradient at its bounds,
and ties of maximum/minimum share the gradient equally between the two inputs.
"""
import math

from minigrad import backend
from minigrad.core import Function, Tensor, as_tensor
from minigrad.ops.shape import add_tangents, unbroadcast


def _xp(a):
    return backend.get_array_module(a)


class Exp(Function):
    needs_input_data = False
    saves_output = True

    def forward(self, x):
        return _xp(x).exp(x)

    def backward(self, gy):
        return gy * self.output()

    def jvp(self, tx):
        return tx * self.output()


class Log(Function):
    def forward(self, x):
        return _xp(x).log(x)

    def backward(self, gy):
        return gy / self.inputs[0]

    def jvp(self, tx):
        return tx / self.inputs[0]


class Sqrt(Function):
    needs_input_data = False
    saves_output = True

    def forward(self, x):
        return _xp(x).sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.output())

    def jvp(self, tx):
        return tx / (2 * self.output())


class Abs(Function):
    def forward(self, x):
        return _xp(x).abs(x)

    def backward(self, gy):
        x = self.inputs[0].data
        return gy * Tensor(_xp(x).sign(x))

    def jvp(self, tx):
        x = self.inputs[0].data
        return tx * Tensor(_xp(x).sign(x))


class Clip(Function):
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        return _xp(x).clip(x, self.lo, self.hi)

    def backward(self, gy):
        x = self.inputs[0].data
        inside = x == x
        if self.lo is not None:
            inside &= x >= self.lo
        if self.hi is not None:
            inside &= x <= self.hi
        return gy * Tensor(inside.astype(x.dtype))

    def jvp(self, tx):
        x = self.inputs[0].data
        inside = x == x
        if self.lo is not None:
            inside &= x >= self.lo
        if self.hi is not None:
            inside &= x <= self.hi
        return tx * Tensor(inside.astype(x.dtype))


class Maximum(Function):
    def forward(self, a, b):
        return _xp(a).maximum(a, b)

    def backward(self, gy):
        a, b = self.inputs
        wa = (a.data > b.data) + 0.5 * (a.data == b.data)
        wa = Tensor(wa.astype(gy.dtype))
        return unbroadcast(gy * wa, a), unbroadcast(gy * (1 - wa), b)

    def jvp(self, ta, tb):
        a, b = self.inputs
        wa = Tensor(((a.data > b.data) + 0.5 * (a.data == b.data)).astype(a.dtype))
        return add_tangents(None if ta is None else ta * wa, None if tb is None else tb * (1 - wa))


class Minimum(Function):
    def forward(self, a, b):
        return _xp(a).minimum(a, b)

    def backward(self, gy):
        a, b = self.inputs
        wa = (a.data < b.data) + 0.5 * (a.data == b.data)
        wa = Tensor(wa.astype(gy.dtype))
        return unbroadcast(gy * wa, a), unbroadcast(gy * (1 - wa), b)

    def jvp(self, ta, tb):
        a, b = self.inputs
        wa = Tensor(((a.data < b.data) + 0.5 * (a.data == b.data)).astype(a.dtype))
        return add_tangents(None if ta is None else ta * wa, None if tb is None else tb * (1 - wa))


class Where(Function):
    """``where(cond, a, b)``; ``cond`` is a constant boolean array."""
    needs_input_data = False


    def __init__(self, cond):
        self.cond = cond

    def forward(self, a, b):
        return _xp(a).where(self.cond, a, b)

    def backward(self, gy):
        a, b = self.inputs
        zero = Tensor(_xp(gy.data).zeros((), gy.dtype))
        return (unbroadcast(Where(self.cond)(gy, zero), a) if a._requires_grad else None,
                unbroadcast(Where(self.cond)(zero, gy), b) if b._requires_grad else None)

    def jvp(self, ta, tb):
        like = ta if ta is not None else tb
        zero = Tensor(_xp(like.data).zeros((), like.dtype))
        return Where(self.cond)(zero if ta is None else ta, zero if tb is None else tb)


class Sin(Function):
    def forward(self, x):
        return _xp(x).sin(x)

    def backward(self, gy):
        return gy * cos(self.inputs[0])

    def jvp(self, tx):
        return tx * cos(self.inputs[0])


class Cos(Function):
    def forward(self, x):
        return _xp(x).cos(x)

    def backward(self, gy):
        return -gy * sin(self.inputs[0])

    def jvp(self, tx):
        return -tx * sin(self.inputs[0])


class Tanh(Function):
    needs_input_data = False
    saves_output = True

    def forward(self, x):
        return _xp(x).tanh(x)

    def backward(self, gy):
        y = self.output()
        return gy * (1 - y * y)

    def jvp(self, tx):
        y = self.output()
        return tx * (1 - y * y)


class Sigmoid(Function):
    needs_input_data = False
    saves_output = True

    def forward(self, x):
        xp = _xp(x)
        return (xp.tanh(x * 0.5) + 1) * 0.5  # = 1/(1+e^-x), stable for any |x|

    def backward(self, gy):
        y = self.output()
        return gy * y * (1 - y)

    def jvp(self, tx):
        y = self.output()
        return tx * y * (1 - y)


class Relu(Function):
    def forward(self, x):
        return _xp(x).maximum(x, 0)

    def backward(self, gy):
        x = self.inputs[0].data
        return gy * Tensor((x > 0).astype(x.dtype))

    def jvp(self, tx):
        x = self.inputs[0].data
        return tx * Tensor((x > 0).astype(x.dtype))


class LeakyRelu(Function):
    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        return _xp(x).where(x > 0, x, x * self.slope)

    def backward(self, gy):
        x = self.inputs[0].data
        return gy * Tensor(_xp(x).where(x > 0, 1, self.slope).astype(x.dtype))

    def jvp(self, tx):
        x = self.inputs[0].data
        return tx * Tensor(_xp(x).where(x > 0, 1, self.slope).astype(x.dtype))


class Elu(Function):
    saves_output = True

    def __init__(self, alpha):
        self.alpha = alpha

    def forward(self, x):
        xp = _xp(x)
        return xp.where(x > 0, x, self.alpha * xp.expm1(xp.minimum(x, 0)))

    def backward(self, gy):
        x = self.inputs[0]
        positive = x.data > 0
        return Where(positive)(gy, gy * (self.output() + self.alpha))

    def jvp(self, tx):
        return Where(self.inputs[0].data > 0)(tx, tx * (self.output() + self.alpha))


class Erf(Function):
    def forward(self, x):
        return backend.erf(x)

    def backward(self, gy):
        x = self.inputs[0]
        return gy * (2 / math.sqrt(math.pi)) * exp(-(x * x))

    def jvp(self, tx):
        x = self.inputs[0]
        return tx * (2 / math.sqrt(math.pi)) * exp(-(x * x))


class Softplus(Function):
    """log(1 + e^{βx}) / β, computed as max(x,0) + log1p(e^{-|x|}) so it never overflows."""

    def __init__(self, beta):
        self.beta = beta

    def forward(self, x):
        xp = _xp(x)
        bx = x * self.beta
        return (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / self.beta

    def backward(self, gy):
        return gy * sigmoid(self.inputs[0] * self.beta)

    def jvp(self, tx):
        return tx * sigmoid(self.inputs[0] * self.beta)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def abs(x):
    return Abs()(x)


def clip(x, min=None, max=None):
    """Clamp to ``[min, max]`` (either may be None); the gradient passes where min ≤ x ≤ max."""
    if min is None and max is None:
        raise ValueError("clip needs min or max")
    return Clip(min, max)(x)


clamp = clip


def maximum(a, b):
    return Maximum()(a, b)


def minimum(a, b):
    return Minimum()(a, b)


def where(cond, a, b):
    """``a`` where ``cond`` else ``b`` (broadcasting); ``cond`` is a boolean tensor or array, never differentiated."""
    from minigrad.ops.arithmetic import _pair
    cond = cond.data if isinstance(cond, Tensor) else cond
    a, b = _pair(a, b)
    if not backend.is_array(cond):
        cond = a.xp.asarray(cond)
    if cond.dtype != bool:
        raise TypeError(f"where: cond must be a boolean tensor or array, got {getattr(cond, 'dtype', type(cond))}")
    return Where(cond)(a, b)


def sin(x):
    return Sin()(x)


def cos(x):
    return Cos()(x)


def tanh(x):
    return Tanh()(x)


def sigmoid(x):
    return Sigmoid()(x)


def relu(x):
    return Relu()(x)


def leaky_relu(x, negative_slope=0.01):
    return LeakyRelu(negative_slope)(x)


def elu(x, alpha=1.0):
    return Elu(alpha)(x)


def erf(x):
    return Erf()(x)


def gelu(x, approximate="none"):
    """x·Φ(x) (``approximate="tanh"``: the tanh approximation), composed from differentiable ops."""
    x = as_tensor(x)
    if approximate == "tanh":
        return 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))


def softplus(x, beta=1.0):
    return Softplus(beta)(x)


def sign(x):
    """Sign of each element (no gradient: the derivative is zero almost everywhere)."""
    x = as_tensor(x)
    return Tensor(_xp(x.data).sign(x.data))
