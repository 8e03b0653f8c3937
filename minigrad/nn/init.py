"""Parameter initialisers with PyTorch's names. Each fills a tensor in place from the seeded generator of
its device (``mg.manual_seed`` makes them repeat) and returns it."""
import math

from minigrad import backend
from minigrad.core import on_inputs_device


def calculate_gain(nonlinearity, param=None):
    """The factor that keeps activations' variance steady through ``nonlinearity``."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    """fan_in = shape[1]·receptive field, fan_out = shape[0]·receptive field (PyTorch's convention)."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 axes, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, values):
    tensor.data[...] = values.astype(tensor.dtype, copy=False)
    tensor._version += 1
    return tensor


def _gen(tensor):
    return backend.generator(tensor.device)


@on_inputs_device
def uniform_(tensor, a=0.0, b=1.0):
    return _fill(tensor, _gen(tensor).random(tensor.shape) * (b - a) + a)


@on_inputs_device
def normal_(tensor, mean=0.0, std=1.0):
    return _fill(tensor, _gen(tensor).standard_normal(tensor.shape) * std + mean)


@on_inputs_device
def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """Normal values redrawn until they fall in [a, b]."""
    xp = tensor.xp
    v = _gen(tensor).standard_normal(tensor.shape) * std + mean
    bad = (v < a) | (v > b)
    while bool(bad.any()):
        v = xp.where(bad, _gen(tensor).standard_normal(tensor.shape) * std + mean, v)
        bad = (v < a) | (v > b)
    return _fill(tensor, v)


@on_inputs_device
def constant_(tensor, val):
    tensor.data[...] = val
    tensor._version += 1
    return tensor


@on_inputs_device
def zeros_(tensor):
    return constant_(tensor, 0)


@on_inputs_device
def ones_(tensor):
    return constant_(tensor, 1)


@on_inputs_device
def eye_(tensor):
    if tensor.ndim != 2:
        raise ValueError(f"eye_ needs a 2-D tensor, got shape {tensor.shape}")
    return _fill(tensor, tensor.xp.eye(*tensor.shape))


def xavier_uniform_(tensor, gain=1.0):
    """U(−a, a) with a = gain·√(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a)


def xavier_normal_(tensor, gain=1.0):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(−b, b) with b = gain·√(3 / fan) (He et al., 2015); ``a`` is the leaky-ReLU slope of the gain."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode)))


@on_inputs_device
def orthogonal_(tensor, gain=1.0):
    """A (semi-)orthogonal matrix (rows × the product of the other axes) from the QR of a Gaussian one."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_ needs at least 2 axes, got shape {tensor.shape}")
    xp = tensor.xp
    rows = tensor.shape[0]
    cols = tensor.size // rows
    m = _gen(tensor).standard_normal((rows, cols))
    if rows < cols:
        m = m.T
    q, r = xp.linalg.qr(m)
    q = q * xp.sign(xp.diagonal(r))  # makes the factorisation unique, so q is uniformly distributed
    if rows < cols:
        q = q.T
    return _fill(tensor, (gain * q).reshape(tensor.shape))
