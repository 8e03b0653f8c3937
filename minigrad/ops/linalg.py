"""Matrix products: batched, broadcasting ``matmul`` and ``einsum`` for what matmul cannot say."""
import math
import string

from minigrad.backend import get_array_module
from minigrad.core import Function, as_tensor, as_tensors
from minigrad.ops.shape import add_tangents, broadcast_to, reshape, sum_to, swapaxes


class MatMul(Function):
    """a @ b for ndim ≥ 2 (batch axes broadcast): ∂a = gy @ bᵀ, ∂b = aᵀ @ gy, each summed to its shape.
    Each input is read only for the other's gradient, so only that one is kept."""

    def forward(self, a, b):
        need_a, need_b = self.needs_input_grad
        self.save_for_backward(a if need_b else None, b if need_a else None)
        if a.ndim > 2 and b.ndim == 2:  # one BLAS product over the stacked rows, not a loop over the batch
            rows = math.prod(a.shape[:-1])  # not -1: that cannot be inferred when an axis is empty
            return get_array_module(a).matmul(a.reshape(rows, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[-1],))
        return get_array_module(a).matmul(a, b)

    def backward(self, gy):
        a, b = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        ga = sum_to(MatMul()(gy, swapaxes(b, -1, -2)), self.input_shape(0)) if need_a else None
        gb = None
        if need_b and len(self.input_shape(1)) == 2 and a.ndim > 2:  # a weight shared by a batch: one product
            rows = math.prod(a.shape[:-1])
            gb = MatMul()(swapaxes(reshape(a, (rows, a.shape[-1])), 0, 1), reshape(gy, (rows, gy.shape[-1])))
        elif need_b:
            gb = sum_to(MatMul()(swapaxes(a, -1, -2), gy), self.input_shape(1))
        return ga, gb

    def jvp(self, ta, tb):
        a, b = self.inputs
        return add_tangents(None if ta is None else MatMul()(ta, b), None if tb is None else MatMul()(a, tb))


def _check_batch_shapes(sa, sb, a_shape, b_shape):
    """The batch axes (all but the last two) must broadcast: a clear error instead of NumPy's internal one."""
    for x, y in zip(reversed(sa), reversed(sb)):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"matmul: batch shapes {tuple(sa)} and {tuple(sb)} of operands {a_shape} and {b_shape} "
                             "do not broadcast")


def matmul(a, b):
    """NumPy's ``matmul``: 1-D operands are promoted to matrices and the added axis dropped again."""
    a, b = as_tensors(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 axis, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                         f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
    _check_batch_shapes(a.shape[:-2], b.shape[:-2], a.shape, b.shape)
    if a.ndim >= 2 and b.ndim >= 2:
        return MatMul()(a, b)
    a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    y = MatMul()(a2, b2)
    if a.ndim == 1:  # drop the prepended axis first, so that 1-D @ 1-D ends with shape ()
        y = reshape(y, y.shape[:-2] + y.shape[-1:])
    if b.ndim == 1:
        y = reshape(y, y.shape[:-1])
    return y


def dot(a, b):
    """PyTorch's ``dot``: the inner product of two 1-D tensors of equal length, a 0-d tensor."""
    a, b = as_tensors(a, b)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"dot: needs two 1-D tensors of the same length, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


class Linear(Function):
    """y = x Wᵀ + b over the last axis of x, as one node (the layer's op). Backward, in matmuls so it can be
    differentiated again: ∂x = gy W, ∂W = gyᵀ x and ∂b = Σ gy, summed over all leading axes."""

    def forward(self, x, w, b=None):
        need_x, need_w = self.needs_input_grad[:2]
        self.save_for_backward(x if need_w else None, w if need_x else None)
        y = get_array_module(x).matmul(x, w.T)
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        x, w = self.saved_tensors
        need = self.needs_input_grad
        gx = matmul(gy, w) if need[0] else None
        gw = None
        if need[1]:
            g2, x2 = reshape(gy, (-1, gy.shape[-1])), reshape(x, (-1, x.shape[-1]))
            gw = MatMul()(swapaxes(g2, 0, 1), x2)
        if len(need) == 2:
            return gx, gw
        return gx, gw, (sum_to(gy, self.input_shape(2)) if need[2] else None)

    def jvp(self, tx, tw, tb=None):
        x, w = self.inputs[0], self.inputs[1]
        return add_tangents(None if tx is None else Linear()(tx, w), None if tw is None else Linear()(x, tw), tb)


def linear(x, weight, bias=None):
    """x @ Wᵀ + b with PyTorch's weight layout ``(out_features, in_features)``."""
    x = as_tensor(x)
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape {weight.shape} "
                         "(its last axis must equal in_features = weight.shape[1])")
    if x.dtype != weight.dtype:
        raise TypeError(f"linear: input is {x.dtype} but weight is {weight.dtype}; convert one of them "
                        "(x.astype(...) or module.to(dtype=...)) — no silent casting")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias of shape {bias.shape} must be ({weight.shape[0]},)")
    return Linear()(x, weight) if bias is None else Linear()(x, weight, bias)


def _parse(subscripts, shapes):
    """Explicit subscripts with '...' replaced by spare letters: (['ij', 'jk'], 'ik')."""
    subscripts = subscripts.replace(" ", "")
    lhs, arrow, out = subscripts.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {subscripts!r} names {len(ins)} operands, {len(shapes)} given")
    spare = [c for c in string.ascii_letters if c not in subscripts]
    nell = 0
    for s, shape in zip(ins, shapes):
        if "..." in s:
            nell = max(nell, len(shape) - (len(s) - 3))
    ell = "".join(spare[:nell])
    ins = [s.replace("...", ell[nell - (len(shape) - (len(s) - 3)):]) if "..." in s else s
           for s, shape in zip(ins, shapes)]
    if not arrow:
        counts = {c: "".join(ins).count(c) for c in "".join(ins)}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    for s, shape in zip(ins, shapes):
        if len(s) != len(shape):
            raise ValueError(f"einsum: subscripts {s!r} do not match an operand of shape {shape}")
        if len(set(s)) != len(s):
            raise NotImplementedError(f"einsum: repeated index within one operand ({s!r}) is not differentiable "
                                      "here; take the diagonal explicitly")
    return ins, out


class Einsum(Function):
    """Einstein summation; the gradient of operand i is the einsum of the gradient with the other operands."""

    def __init__(self, ins, out):
        self.ins, self.out = ins, out

    def forward(self, *xs):
        need = self.needs_input_grad
        self.save_for_backward(*(x if any(need[:i] + need[i + 1:]) else None for i, x in enumerate(xs)))
        self.shapes = [x.shape for x in xs]
        return get_array_module(xs[0]).einsum(",".join(self.ins) + "->" + self.out, *xs)

    def backward(self, gy):
        xs, grads = self.saved_tensors, []
        for i, shape in enumerate(self.shapes):
            if not self.needs_input_grad[i]:
                grads.append(None)
                continue
            others = [s for j, s in enumerate(self.ins) if j != i]
            present = set(self.out).union(*others)
            target = self.ins[i]
            kept = "".join(c for c in target if c in present)
            g = Einsum([self.out] + others, kept)(gy, *[t for j, t in enumerate(xs) if j != i])
            if kept != target:  # indices summed in x alone: broadcast the gradient over them
                g = broadcast_to(reshape(g, tuple(shape[target.index(c)] if c in kept else 1 for c in target)), shape)
            grads.append(g)
        return tuple(grads)

    def jvp(self, *txs):
        terms = [Einsum(self.ins, self.out)(*[t if j == i else x for j, x in enumerate(self.inputs)])
                 for i, t in enumerate(txs) if t is not None]
        return add_tangents(*terms)


def einsum(subscripts, *operands):
    """Einstein summation over tensors (NumPy's spelling, '...' allowed); differentiable in every operand."""
    operands = [as_tensor(o) for o in operands]
    ins, out = _parse(subscripts, [o.shape for o in operands])
    sizes = {}
    for s, o in zip(ins, operands):
        for c, n in zip(s, o.shape):
            if sizes.setdefault(c, n) != n:
                raise ValueError(f"einsum: index {c!r} has sizes {sizes[c]} and {n} in {subscripts!r}")
    return Einsum(ins, out)(*operands)
