"""Linear, Identity, Flatten and Unflatten, with PyTorch's arguments and default initialisation."""
import math

from minigrad import backend
from minigrad.core import Tensor, as_tensor
from minigrad.nn import init
from minigrad.nn.module import Module, Parameter
from minigrad.ops.linalg import linear
from minigrad.ops.shape import flatten, reshape


def empty_parameter(shape, device=None, dtype=None):
    """A zero Parameter of ``shape`` (float32 on the CPU unless told otherwise), to be filled by an init."""
    return Parameter(zeros_tensor(shape, device, dtype))


def zeros_tensor(shape, device=None, dtype=None):
    data = backend.asarray(0.0, dtype=dtype or backend.DEFAULT_FLOAT, device=device or "cpu")
    with backend.device_scope(data):  # on ``device``, not on the current GPU
        return Tensor(backend.get_array_module(data).zeros(tuple(shape), dtype=data.dtype))


def default_init(weight, bias):
    """PyTorch's default for Linear and conv layers: weight and bias U(−1/√fan_in, 1/√fan_in) (for the weight
    that is ``kaiming_uniform_`` with a = √5)."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = init._calculate_fan_in_and_fan_out(weight)[0]
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound)


def _check_features(layer, x, size, what, axis=-1):
    if x.ndim == 0 or x.shape[axis] != size:
        raise ValueError(f"{layer}: input of shape {x.shape} must have {size} {what} on axis {axis}")


class Identity(Module):
    """Returns its input (a placeholder that accepts and ignores any arguments)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x Wᵀ + b, weight (out_features, in_features); W and b start as U(−1/√in, 1/√in) like PyTorch."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = empty_parameter((out_features, in_features), device, dtype)
        self.register_parameter("bias", empty_parameter((out_features,), device, dtype) if bias else None)
        self.reset_parameters()

    def reset_parameters(self):
        default_init(self.weight, self.bias)

    def forward(self, input):
        x = as_tensor(input)
        _check_features(f"Linear(in_features={self.in_features})", x, self.in_features, "features")
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Merge axes ``start_dim`` … ``end_dim`` into one (by default everything but the batch axis)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split axis ``dim`` into ``unflattened_size``."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input):
        x = as_tensor(input)
        d = backend.normalize_axis(self.dim, x.ndim, "Unflatten", "dim")
        size = math.prod(self.unflattened_size)
        if -1 not in self.unflattened_size and size != x.shape[d]:
            raise ValueError(f"Unflatten(dim={self.dim}, unflattened_size={self.unflattened_size}): axis {d} of the "
                             f"input of shape {x.shape} has {x.shape[d]} elements, not {size}")
        return reshape(x, x.shape[:d] + self.unflattened_size + x.shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
