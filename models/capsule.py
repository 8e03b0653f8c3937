"""Capsules: squash, dynamic routing as one Function with a hand-written backward through every iteration,
the ``Capsule`` layer and the margin loss.

Three routings (equations in docs/derivations/capsule.md): ``"sabour"`` accumulates the logits
b ← b + ⟨û, v⟩ and squashes every iteration; ``"su"`` replaces them, b ← ⟨û, v⟩; ``"kmeans"`` replaces them
with ⟨û, s/‖s‖⟩ and squashes only the output, as the fixed-point iteration of a soft k-means objective
(``soft_kmeans_objective``). ``*_composed`` versions built from minigrad ops are the references.
"""
import math

import minigrad as mg
from minigrad.aliases import torch_names
from minigrad import backend
from minigrad.core import Function, Tensor, as_tensor, on_inputs_device
from minigrad.forward_ad import raw_tangent
from minigrad.nn import Module, Parameter
from minigrad.ops import array_math

VARIANTS = ("sabour", "su", "kmeans")
EPS = 1e-12


# ---- squash and normalise on raw arrays (shared by Squash and DynamicRouting) -------------------------------
def _squash(x, c, eps, axis=-1):
    """v = x · q/(c+q) / √(q+ε) with q = ‖x‖²: the length goes to q/(c+q) < 1, the direction is kept."""
    q = (x * x).sum(axis=axis, keepdims=True)
    return x * (q / ((c + q) * backend.get_array_module(x).sqrt(q + eps)))


def _squash_backward(x, g, c, eps, axis=-1):
    """x̄ = h·g + 2h'(q)·x⟨x, g⟩ for v = h(q)·x, with 2h'(q) = (cq − q² + 2cε) / (r³(c+q)²), r = √(q+ε)."""
    xp = backend.get_array_module(x)
    q = (x * x).sum(axis=axis, keepdims=True)
    r = xp.sqrt(q + eps)
    h = q / ((c + q) * r)
    dh2 = (c * q - q * q + 2 * c * eps) / (r * r * r * (c + q) * (c + q))
    return h * g + x * (dh2 * (x * g).sum(axis=axis, keepdims=True))


def _normalize(x, eps):
    return x / backend.get_array_module(x).sqrt((x * x).sum(axis=-1, keepdims=True) + eps)


def _normalize_backward(x, g, eps):
    """x̄ = g/r − x⟨x, g⟩/r³ for v = x/r, r = √(‖x‖²+ε)."""
    r = backend.get_array_module(x).sqrt((x * x).sum(axis=-1, keepdims=True) + eps)
    return g / r - x * ((x * g).sum(axis=-1, keepdims=True) / (r * r * r))


def _check_squash_args(c, eps):
    if not c > 0:
        raise ValueError(f"squash: c must be positive, got {c!r}")
    if not eps > 0:
        raise ValueError(f"squash: eps must be positive (it keeps 0/0 out of x/‖x‖ at x = 0), got {eps!r}")
    return float(c), float(eps)


# ---- squash -------------------------------------------------------------------------------------------------
class Squash(Function):
    """squash(x) = ‖x‖²/(c+‖x‖²) · x/‖x‖ over ``axis``; backward on arrays (see ``_squash_backward``)."""

    differentiable_backward = False

    def __init__(self, axis, c, eps):
        self.axis, self.c, self.eps = axis, c, eps

    def forward(self, x):
        self.save_for_backward(x)
        return _squash(x, self.c, self.eps, self.axis)

    def backward(self, gy):
        x, = self.saved_tensors
        return Tensor(_squash_backward(x.data, gy.data, self.c, self.eps, self.axis))

    def jvp(self, tx):
        """The Jacobian h(q)·I + 2h'(q)·x xᵀ is symmetric, so the tangent is the backward's map applied to tx."""
        x = self.inputs[0]
        return raw_tangent(self, _squash_backward(x.data, tx.data, self.c, self.eps, self.axis), x, tx)


@torch_names
def squash(x, axis=-1, eps=EPS, c=1.0):
    """‖x‖²/(c+‖x‖²) · x/‖x‖ (Sabour: c = 1, Su: c = 0.5). ``eps`` only guards the division by ‖x‖
    (written x·q/((c+q)√(q+ε))), so value and gradient are 0 at x = 0 and the value is exact elsewhere."""
    x = as_tensor(x)
    c, eps = _check_squash_args(c, eps)
    if x.ndim == 0:
        raise ValueError("squash: x needs at least one axis (the capsule dimension)")
    return Squash(backend.normalize_axis(axis, x.ndim, "squash"), c, eps)(x)


@torch_names
def squash_composed(x, axis=-1, eps=EPS, c=1.0):
    """The same map from minigrad ops (reference; differentiable to any order)."""
    x = as_tensor(x)
    c, eps = _check_squash_args(c, eps)
    backend.normalize_axis(axis, x.ndim, "squash_composed")
    q = mg.sum(x * x, axis=axis, keepdims=True)
    return x * (q / ((q + c) * mg.sqrt(q + eps)))


def _normalize_composed(x, eps):
    return x / mg.sqrt(mg.sum(x * x, axis=-1, keepdims=True) + eps)


# ---- dynamic routing ----------------------------------------------------------------------------------------
def _check_routing_args(u_hat, iterations, variant, c, eps):
    if u_hat.ndim != 4:
        raise ValueError(f"dynamic_routing: u_hat must have shape (B, in_caps, out_caps, dim), got {u_hat.shape}")
    if not backend.is_floating(u_hat.dtype):
        raise TypeError(f"dynamic_routing: u_hat must be floating point, got {u_hat.dtype}")
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"dynamic_routing: iterations must be an int >= 1, got {iterations!r}")
    if variant not in VARIANTS:
        raise ValueError(f"dynamic_routing: variant must be one of {VARIANTS}, got {variant!r}")
    return _check_squash_args(c, eps)


class DynamicRouting(Function):
    """û (B, I, J, D) → v (B, J, D) through all routing iterations; backward replays them in reverse.

    Internally everything is kept in the (B, J, I, ·) layout so that Σ_i c_ij û_ij and ⟨û_ij, v_j⟩ are
    batched matrix products. The gradient of û is a rank-(2T−1) sum of outer products, formed in one matmul.
    """

    differentiable_backward = False

    def __init__(self, iterations, variant, c, eps, detach):
        self.T, self.variant, self.c, self.eps, self.detach = iterations, variant, c, eps, detach

    def forward(self, u_hat):
        xp = backend.get_array_module(u_hat)
        B, I, J, D = u_hat.shape
        uT = xp.ascontiguousarray(u_hat.transpose(0, 2, 1, 3))   # (B, J, I, D)
        b = xp.zeros((B, J, I), dtype=u_hat.dtype)
        cs, ss, vs = [], [], []
        for t in range(self.T):
            cc = array_math.softmax(b, axis=1)                     # over out_caps j
            s = (cc[:, :, None, :] @ uT)[:, :, 0, :]               # s_j = Σ_i c_ij û_ij
            cs.append(cc)
            ss.append(s)
            if t == self.T - 1:
                break
            v = _normalize(s, self.eps) if self.variant == "kmeans" else _squash(s, self.c, self.eps)
            a = (uT @ v[..., None])[..., 0]                        # a_ij = ⟨û_ij, v_j⟩
            b = b + a if self.variant == "sabour" else a
            vs.append(v)
        self.save_for_backward(uT, *cs, *ss, *vs)                 # T couplings, T sums, T − 1 outputs
        return _squash(ss[-1], self.c, self.eps)

    def backward(self, gy):
        uT, *saved = (t.data for t in self.saved_tensors)
        cs, ss, vs = saved[:self.T], saved[self.T:2 * self.T], saved[2 * self.T:]
        xp = backend.get_array_module(uT)
        gs = _squash_backward(ss[-1], gy.data, self.c, self.eps)
        left, right = [cs[-1]], [gs]                               # ū_ij = Σ left_ij ⊗ right_j
        gb = 0
        for t in range(self.T - 1, 0, -1) if not self.detach else ():
            gc = (uT @ gs[..., None])[..., 0]                      # c̄_ij = ⟨û_ij, s̄_j⟩
            gb = gb + cs[t] * (gc - (gc * cs[t]).sum(axis=1, keepdims=True))   # b̄ of b^t (softmax over j)
            gv = (gb[:, :, None, :] @ uT)[:, :, 0, :]              # v̄_j = Σ_i ā_ij û_ij with ā = b̄
            left.append(gb)
            right.append(vs[t - 1])
            gs = (_normalize_backward(ss[t - 1], gv, self.eps) if self.variant == "kmeans"
                  else _squash_backward(ss[t - 1], gv, self.c, self.eps))
            left.append(cs[t - 1])
            right.append(gs)
            if self.variant != "sabour":
                gb = 0                                             # replaced logits: nothing reaches b^{t-1}
        B, J, I, D = uT.shape
        gu = xp.empty((B, I, J, D), dtype=uT.dtype)               # written through a (B, J, I, D) view
        xp.matmul(xp.stack(left, axis=-1), xp.stack(right, axis=-2), out=gu.transpose(0, 2, 1, 3))
        return Tensor(gu)

    def jvp(self, *tangents):
        raise NotImplementedError("DynamicRouting is a fused op without a forward-mode rule (jvp): "
                                  "use dynamic_routing_composed for forward mode")


def dynamic_routing(u_hat, iterations=3, variant="sabour", squash_c=1.0, eps=EPS, detach=False):
    """Route predictions û (B, in_caps, out_caps, dim) to output capsules v (B, out_caps, dim).

    ``variant``: "sabour", "su" or "kmeans"; couplings c_ij = softmax over out_caps j of b_ij, starting from
    b = 0. The gradient flows through the couplings of every iteration unless ``detach=True`` (then only
    through the last s = Σ_i c_ij û_ij, with c held fixed).
    """
    u_hat = as_tensor(u_hat)
    c, eps = _check_routing_args(u_hat, iterations, variant, squash_c, eps)
    return DynamicRouting(iterations, variant, c, eps, bool(detach))(u_hat)


def dynamic_routing_composed(u_hat, iterations=3, variant="sabour", squash_c=1.0, eps=EPS, detach=False):
    """The same routing from minigrad ops (the reference the hand-written backward is tested against)."""
    u_hat = as_tensor(u_hat)
    c, eps = _check_routing_args(u_hat, iterations, variant, squash_c, eps)
    route = u_hat.detach() if detach else u_hat
    b = Tensor(u_hat.xp.zeros(u_hat.shape[:3], dtype=u_hat.dtype))
    for t in range(iterations):
        cc = mg.softmax(b, axis=2)
        u = u_hat if t == iterations - 1 else route
        s = mg.sum(mg.unsqueeze(cc, -1) * u, axis=1)
        if t == iterations - 1:
            return squash_composed(s, c=c, eps=eps)
        v = _normalize_composed(s, eps) if variant == "kmeans" else squash_composed(s, c=c, eps=eps)
        a = mg.sum(route * mg.unsqueeze(v, 1), axis=-1)
        b = b + a if variant == "sabour" else a


def soft_kmeans_objective(u_hat, v):
    """L(v) = −Σ_i log Σ_j exp⟨û_ij, v_j⟩ per example (shape (B,)), for centres v (B, J, D) of unit length.

    The "kmeans" routing is the fixed-point iteration v_j ← normalise(Σ_i c_ij û_ij) of min L s.t. ‖v_j‖ = 1;
    each of its steps cannot increase L (docs/derivations/capsule.md). v = 0 (the start, b = 0) gives −I·log J.
    """
    u_hat, v = as_tensor(u_hat), as_tensor(v)
    if v.shape != (u_hat.shape[0],) + u_hat.shape[2:]:
        raise ValueError(f"soft_kmeans_objective: v must have shape {(u_hat.shape[0],) + u_hat.shape[2:]} "
                         f"for u_hat {u_hat.shape}, got {v.shape}")
    a = mg.sum(u_hat * mg.unsqueeze(v, 1), axis=-1)
    return -mg.sum(mg.logsumexp(a, axis=2), axis=1)


# ---- layer and loss -----------------------------------------------------------------------------------------
class Capsule(Module):
    """Input capsules u (B, in_caps, in_dim) → output capsules v (B, out_caps, out_dim) by dynamic routing.

    Predictions û_{j|i} = u_i W_ij. ``shared=True``: one matrix W (in_dim, out_caps·out_dim) for every input
    capsule, so any number of input capsules is accepted (in_caps may be None); ``shared=False``: one matrix
    per input capsule, W (in_caps, in_dim, out_caps·out_dim).
    """

    def __init__(self, in_caps, out_caps, in_dim, out_dim, shared=True, routing="sabour", iterations=3,
                 squash_c=1.0, detach=False, device="cpu", dtype=None):
        super().__init__()
        if routing not in VARIANTS:
            raise ValueError(f"Capsule: routing must be one of {VARIANTS}, got {routing!r}")
        if not shared and not (isinstance(in_caps, int) and in_caps > 0):
            raise ValueError(f"Capsule: shared=False needs a positive in_caps, got {in_caps!r}")
        self.in_caps, self.out_caps, self.in_dim, self.out_dim = in_caps, out_caps, in_dim, out_dim
        self.shared, self.routing, self.iterations = shared, routing, iterations
        self.squash_c, self.detach = squash_c, detach
        # Glorot over the whole map in_dim → out_caps·out_dim, as Keras counts the fans of the seed's kernel; the
        # per-capsule count (in_dim + out_dim) gave 1.7× larger predictions and, summed over many inputs,
        # capsules squashed to length ≈ 1 at the start, where the length barely moves (derivation §5)
        bound = math.sqrt(6.0 / (in_dim + out_caps * out_dim))
        shape = (in_dim, out_caps * out_dim) if shared else (in_caps, in_dim, out_caps * out_dim)
        self.weight = Parameter((mg.rand(*shape, dtype=dtype, device=device) * 2.0 - 1.0) * bound)

    def predictions(self, u):
        """û (B, in_caps, out_caps, out_dim)."""
        u = as_tensor(u)
        if u.ndim != 3 or u.shape[2] != self.in_dim or (not self.shared and u.shape[1] != self.in_caps):
            want = f"(B, {self.in_caps if not self.shared else 'any'}, {self.in_dim})"
            raise ValueError(f"Capsule: input must have shape {want}, got {u.shape}")
        B, I = u.shape[:2]
        if self.shared:   # one 2-D GEMM (a broadcast batched matmul misses BLAS in NumPy)
            u_hat = mg.reshape(mg.reshape(u, (B * I, self.in_dim)) @ self.weight, (B, I, -1))
        else:
            u_hat = mg.transpose(mg.transpose(u, (1, 0, 2)) @ self.weight, (1, 0, 2))   # I batched GEMMs
        return mg.reshape(u_hat, (B, I, self.out_caps, self.out_dim))

    def forward(self, u):
        return dynamic_routing(self.predictions(u), self.iterations, self.routing, self.squash_c,
                               detach=self.detach)

    def extra_repr(self):
        return (f"in_caps={self.in_caps}, out_caps={self.out_caps}, in_dim={self.in_dim}, out_dim={self.out_dim}, "
                f"shared={self.shared}, routing={self.routing!r}, iterations={self.iterations}")


def capsule_lengths(v):
    """‖v_j‖ over the last axis: the class scores of a capsule head (in [0, 1) after squash)."""
    return mg.norm(as_tensor(v), axis=-1)


@on_inputs_device
def capsule_margin_loss(lengths, targets, m_plus=0.9, m_minus=0.1, lam=0.5, reduction="mean"):
    """Σ_k T_k·max(0, m⁺ − ‖v_k‖)² + λ(1 − T_k)·max(0, ‖v_k‖ − m⁻)², averaged over the batch.

    ``lengths`` (B, K); ``targets`` class indices (B,) or multi-hot 0/1 (B, K) (several classes present).
    """
    lengths = as_tensor(lengths)
    if lengths.ndim != 2:
        raise ValueError(f"capsule_margin_loss: lengths must have shape (B, K), got {lengths.shape}")
    xp = lengths.xp
    t = targets.data if isinstance(targets, Tensor) else xp.asarray(targets)
    B, K = lengths.shape
    if t.ndim == 1:
        if t.dtype.kind not in "iu" or t.shape[0] != B:
            raise ValueError(f"capsule_margin_loss: class-index targets must be integers of shape ({B},), "
                             f"got {t.dtype} {t.shape}")
        if bool(((t < 0) | (t >= K)).any()):
            raise IndexError(f"capsule_margin_loss: targets hold a class outside [0, {K})")
        onehot = (xp.arange(K)[None, :] == t[:, None]).astype(lengths.dtype)
    elif t.shape == lengths.shape:
        if not bool(((t == 0) | (t == 1)).all()):
            raise ValueError("capsule_margin_loss: multi-hot targets must hold only 0 and 1")
        onehot = t.astype(lengths.dtype)
    else:
        raise ValueError(f"capsule_margin_loss: targets must have shape ({B},) (indices) or {lengths.shape} "
                         f"(multi-hot), got {t.shape}")
    onehot = Tensor(onehot)
    pos = mg.relu(float(m_plus) - lengths)
    neg = mg.relu(lengths - float(m_minus))
    loss = mg.sum(onehot * pos * pos + float(lam) * (1.0 - onehot) * neg * neg, axis=1)
    if reduction == "mean":
        return mg.mean(loss)
    if reduction == "sum":
        return mg.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"capsule_margin_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
