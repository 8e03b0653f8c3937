"""Every differentiable op, and the Tensor operators and methods that call them.

``minigrad.core`` defines ``Tensor`` without its math (core sits below the ops and imports none of them); the
table at the end of this file binds ``x + y``, ``x @ w``, ``x.sum()``, ``x.to(...)`` and the rest to the ops.
"""
from minigrad import backend
from minigrad.core import Tensor, on_inputs_device
from minigrad.ops.arithmetic import add, div, mul, neg, pow, sub
from minigrad.ops.elementwise import (abs, clamp, clip, cos, elu, erf, exp, gelu, leaky_relu, log, maximum,
                                      minimum, relu, sigmoid, sign, sin, softplus, sqrt, tanh, where)
from minigrad.ops.linalg import dot, einsum, matmul
from minigrad.ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, l1_loss,
                               mse_loss, nll_loss)
from minigrad.ops.reduction import (argmax, argmin, log_softmax, logsumexp, max, mean, min, norm, softmax, std, sum,
                                    var)
from minigrad.ops.shape import (astype, broadcast_to, cat, concatenate, expand, expand_dims, flatten, getitem,
                                pad, permute, reshape, split, squeeze, stack, sum_to, swapaxes, to_device,
                                transpose, unsqueeze)

__all__ = ["abs", "add", "argmax", "argmin", "astype", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "broadcast_to", "cat", "clamp", "clip", "concatenate", "cos", "cross_entropy", "div", "dot", "einsum", "elu",
           "erf", "exp", "expand", "expand_dims", "flatten", "gelu", "getitem", "l1_loss", "leaky_relu", "log",
           "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "min", "minimum", "mse_loss", "mul", "neg",
           "nll_loss", "norm", "pad", "permute", "pow", "relu", "reshape", "sigmoid", "sign", "sin", "softmax",
           "softplus", "split", "sqrt", "squeeze", "stack", "std", "sub", "sum", "sum_to", "swapaxes", "tanh",
           "to_device", "transpose", "unsqueeze", "var", "where"]


def _compare(op):
    @on_inputs_device
    def method(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(self.xp.asarray(op(self.data, other)))
    return method


def _to(self, device=None, dtype=None):
    """A copy on ``device`` and/or in ``dtype`` (differentiable; self when nothing changes)."""
    out = self
    if dtype is not None and backend.as_dtype(dtype) != self.dtype:
        out = astype(out, dtype)
    if device is not None and backend.parse_device(device) != self.device:
        out = to_device(out, device)
    return out


_methods = {
    "__add__": add, "__radd__": lambda a, b: add(b, a),
    "__sub__": sub, "__rsub__": lambda a, b: sub(b, a),
    "__mul__": mul, "__rmul__": lambda a, b: mul(b, a),
    "__truediv__": div, "__rtruediv__": lambda a, b: div(b, a),
    "__pow__": pow, "__rpow__": lambda a, b: pow(b, a),
    "__matmul__": matmul, "__rmatmul__": lambda a, b: matmul(b, a),
    "__neg__": neg, "__pos__": lambda a: a, "__abs__": abs,
    "__getitem__": getitem,
    "__eq__": _compare(lambda a, b: a == b), "__ne__": _compare(lambda a, b: a != b),
    "__lt__": _compare(lambda a, b: a < b), "__le__": _compare(lambda a, b: a <= b),
    "__gt__": _compare(lambda a, b: a > b), "__ge__": _compare(lambda a, b: a >= b),
    "__invert__": on_inputs_device(lambda a: Tensor(~a.data)),
    "__and__": _compare(lambda a, b: a & b), "__or__": _compare(lambda a, b: a | b),
    "exp": exp, "log": log, "sqrt": sqrt, "abs": abs, "sin": sin, "cos": cos, "tanh": tanh,
    "sigmoid": sigmoid, "relu": relu, "clip": clip, "clamp": clip, "sign": sign,
    "sum": sum, "mean": mean, "max": max, "min": min, "var": var, "std": std, "logsumexp": logsumexp,
    "argmax": argmax, "argmin": argmin, "norm": norm,
    "softmax": softmax, "log_softmax": log_softmax,
    "reshape": reshape, "view": reshape, "transpose": transpose, "permute": permute, "swapaxes": swapaxes,
    "broadcast_to": broadcast_to, "expand": broadcast_to, "squeeze": squeeze, "unsqueeze": unsqueeze,
    "flatten": flatten, "astype": astype, "sum_to": sum_to, "matmul": matmul, "dot": dot,
    "float": lambda a: astype(a, "float32"), "double": lambda a: astype(a, "float64"),
    "long": lambda a: astype(a, "int64"),
    "to": _to, "cpu": lambda a: _to(a, "cpu"), "cuda": lambda a, index=0: _to(a, f"cuda:{index}"),
}
for _name, _fn in _methods.items():
    setattr(Tensor, _name, _fn)
Tensor.T = property(lambda a: transpose(a))
Tensor.mT = property(lambda a: swapaxes(a, -1, -2))
