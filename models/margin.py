"""Margin losses for metric learning, each one Function with a hand-written backward.

Cosine-softmax family: with x̂ = x/‖x‖, ŵ_j = w_j/‖w_j‖ and c_ij = x̂_i·ŵ_j, the logits are z_ij = s·c_ij for
j ≠ y_i and z_iy = s·ψ(c_iy); the per-sample loss is logsumexp_j z_ij − z_iy. Only ψ differs:

    normalized softmax   ψ(c) = c
    AM-Softmax           ψ(c) = c − m
    A-Softmax (simple)   ψ(c) = min(cos mθ, cos θ) = min(T_m(c), c)      T_m: Chebyshev polynomial
    ArcFace              ψ(c) = cos(θ + m) for θ < π − m, else c − (1 − cos m)

plus ``triplet_loss`` and ``contrastive_loss`` on Euclidean distances. Each ``*_composed`` function builds the same
loss from minigrad primitives (autograd derives its backward); the tests prove the two agree.
Derivations: docs/derivations/margin.md. Tests: tests/models/test_margin.py.
"""
import math

import minigrad as mg
from minigrad import backend
from minigrad.backend import get_array_module
from minigrad.core import Function, Tensor, as_tensor, on_inputs_device
from minigrad.nn import Module, Parameter
from minigrad.ops import array_math

NORM_EPS = 1e-12  # ‖x‖ is clamped below by this before dividing (a zero embedding gets a finite gradient)



# ---- argument checks ---------------------------------------------------------------------------------------
def _check_pair(name, embeddings, weight):
    x, w = as_tensor(embeddings), as_tensor(weight)
    if x.ndim != 2 or w.ndim != 2:
        raise ValueError(f"{name}: embeddings must be (B, d) and weight (C, d), got {x.shape} and {w.shape}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"{name}: embeddings {x.shape} and weight {w.shape} disagree on the feature size d")
    if w.shape[0] == 0:
        raise ValueError(f"{name}: weight {w.shape} has no class")
    if not backend.is_floating(x.dtype) or x.dtype != w.dtype:
        raise TypeError(f"{name}: embeddings ({x.dtype}) and weight ({w.dtype}) must share one float dtype")
    return x, w


def _int_labels(name, labels, n, like, arg="labels", high=None):
    """``labels`` as an int64 array of shape (n,) on ``like``'s device, each in [0, high)."""
    xp = like.xp
    data = labels.data if isinstance(labels, Tensor) else labels
    if backend.is_array(data) and backend.device_of(data) != like.device:
        raise ValueError(f"{name}: {arg} are on {backend.device_of(data)} but the inputs on {like.device}")
    data = xp.asarray(data)
    if data.dtype.kind not in ("iub" if arg == "same" else "iu"):
        raise TypeError(f"{name}: {arg} must be integers, got dtype {data.dtype}")
    if data.shape != (n,):
        raise ValueError(f"{name}: {arg} must have shape ({n},) to match a batch of {n}, got {data.shape}")
    data = data.astype("int64")
    if high is not None and n and (int(data.min()) < 0 or int(data.max()) >= high):
        bad = int(data[(data < 0) | (data >= high)][0])
        raise IndexError(f"{name}: {arg} holds {bad}, outside [0, {high})")
    return data


def _check_same(name, *tensors):
    ts = [as_tensor(t) for t in tensors]
    if ts[0].ndim != 2 or any(t.shape != ts[0].shape for t in ts):
        raise ValueError(f"{name}: inputs must all be (B, d) of one shape, got {[t.shape for t in ts]}")
    if not backend.is_floating(ts[0].dtype) or any(t.dtype != ts[0].dtype for t in ts):
        raise TypeError(f"{name}: inputs must share one float dtype, got {[str(t.dtype) for t in ts]}")
    return ts


# ---- row normalisation on arrays: forward and its backward -------------------------------------------------
def _unit_rows(xp, a):
    """(â, n) with â = a/n and n = max(‖a‖, NORM_EPS) per row."""
    n = xp.maximum(xp.sqrt((a * a).sum(axis=1, keepdims=True)), NORM_EPS)
    return a / n, n


def _unit_rows_backward(xp, ah, n, g):
    """∂/∂a of â = a/‖a‖: (g − â(â·g))/‖a‖; rows clamped at NORM_EPS are linear, so just g/NORM_EPS."""
    live = n > NORM_EPS
    return (g - ah * ((ah * g).sum(axis=1, keepdims=True) * live)) / n


# ---- the cosine-softmax family -----------------------------------------------------------------------------
class CosineMarginSoftmax(Function):
    """Per-sample logsumexp_j z_ij − z_iy with z = s·cos, the target cosine replaced by ψ(c_iy).

    Backward: ∂L/∂z = gy·(softmax(z) − onehot); ∂L/∂c = s·∂L/∂z, times ψ'(c) on the target; then through the
    cosine c = x̂ŵᵀ and the two row normalisations. Subclasses only define ``psi`` (value and derivative).
    """

    differentiable_backward = False

    def __init__(self, labels, s):
        self.labels, self.s = labels, float(s)

    def psi(self, xp, c):
        raise NotImplementedError

    def forward(self, x, w):
        xp = get_array_module(x)
        xh, nx = _unit_rows(xp, x)
        wh, nw = _unit_rows(xp, w)
        rows = xp.arange(x.shape[0])
        cos = xh @ wh.T
        psi, dpsi = self.psi(xp, cos[rows, self.labels])
        z = cos * self.s
        z[rows, self.labels] = psi * self.s
        lse = array_math.logsumexp(z, 1)
        p = xp.exp(z - lse[:, None])  # softmax(z), from the log-sum-exp already at hand
        self.save_for_backward(xh, nx, wh, nw, dpsi, p)
        return lse - z[rows, self.labels]

    def backward(self, gy):
        xh, nx, wh, nw, dpsi, p = (t.data for t in self.saved_tensors)
        xp = get_array_module(p)
        rows = xp.arange(p.shape[0])
        dz = p.copy()
        dz[rows, self.labels] -= 1
        dc = dz * (gy.data[:, None] * self.s)
        dc[rows, self.labels] *= dpsi
        gx = _unit_rows_backward(xp, xh, nx, dc @ wh)
        gw = _unit_rows_backward(xp, wh, nw, dc.T @ xh)
        return Tensor(gx), Tensor(gw)

    def jvp(self, *tangents):
        raise NotImplementedError("CosineMarginSoftmax is a fused op without a forward-mode rule (jvp): "
                                  "use the *_composed versions (am_softmax_loss_composed, ...)")


class NormalizedSoftmax(CosineMarginSoftmax):
    """ψ(c) = c: softmax on scaled cosines (no margin)."""

    def psi(self, xp, c):
        return c, xp.ones_like(c)


class AMSoftmax(CosineMarginSoftmax):
    """ψ(c) = c − m: an additive cosine margin."""

    def __init__(self, labels, s, m):
        super().__init__(labels, s)
        self.m = float(m)

    def psi(self, xp, c):
        return c - self.m, xp.ones_like(c)


def _chebyshev(xp, c, m):
    """T_m(c) = cos(m·arccos c) and its derivative, by T_{k+1} = 2cT_k − T_{k−1} (no arccos needed)."""
    t0, t1 = xp.ones_like(c), c
    d0, d1 = xp.zeros_like(c), xp.ones_like(c)
    if m == 0:
        return t0, d0
    for _ in range(m - 1):
        t0, t1, d0, d1 = t1, 2 * c * t1 - t0, d1, 2 * t1 + 2 * c * d1 - d0
    return t1, d1


class ASoftmax(CosineMarginSoftmax):
    """ψ(c) = min(cos mθ, cos θ) = min(T_m(c), c); at a tie the two slopes are averaged (as ``mg.minimum``)."""

    def __init__(self, labels, s, m):
        super().__init__(labels, s)
        self.m = int(m)

    def psi(self, xp, c):
        t, dt = _chebyshev(xp, c, self.m)
        wt = ((t < c) + 0.5 * (t == c)).astype(c.dtype)
        return xp.minimum(t, c), wt * dt + (1 - wt)


class ArcFace(CosineMarginSoftmax):
    """ψ(c) = cos(θ+m) = c·cos m − sin θ·sin m while θ < π − m, else c − (1 − cos m) (continuous, decreasing in θ).
    sin θ = √max(1 − c², eps): the clamp keeps ψ' finite at c = ±1, where d sinθ/dc = −c/sinθ blows up."""

    def __init__(self, labels, s, m, eps):
        super().__init__(labels, s)
        self.m, self.eps = float(m), float(eps)

    def psi(self, xp, c):
        cm, sm = math.cos(self.m), math.sin(self.m)
        one_minus = 1 - c * c
        sin = xp.sqrt(xp.maximum(one_minus, self.eps))
        arc = c > -cm
        dsin = xp.where(one_minus > self.eps, -c / sin, 0)
        psi = xp.where(arc, c * cm - sin * sm, c - (1 - cm))
        return psi, xp.where(arc, cm - sm * dsin, 1)


@on_inputs_device
def _run(cls, name, embeddings, weight, labels, s, *args):
    x, w = _check_pair(name, embeddings, weight)
    if not s > 0:
        raise ValueError(f"{name}: scale s must be positive, got {s}")
    return cls(_int_labels(name, labels, x.shape[0], x, high=w.shape[0]), s, *args)(x, w)


def normalized_softmax_loss(embeddings, weight, labels, s=30.0):
    """Cosine softmax, per sample (B,): logsumexp_j s·c_ij − s·c_iy."""
    return _run(NormalizedSoftmax, "normalized_softmax_loss", embeddings, weight, labels, s)


def am_softmax_loss(embeddings, weight, labels, s=30.0, m=0.35):
    """AM-Softmax (additive cosine margin), per sample (B,): the target logit is s·(c_iy − m)."""
    return _run(AMSoftmax, "am_softmax_loss", embeddings, weight, labels, s, m)


def a_softmax_loss(embeddings, weight, labels, s=30.0, m=4):
    """A-Softmax in its simple form on normalised features, per sample (B,): target logit s·min(cos mθ, cos θ)."""
    if int(m) != m or m < 1:
        raise ValueError(f"a_softmax_loss: m must be a positive integer, got {m}")
    return _run(ASoftmax, "a_softmax_loss", embeddings, weight, labels, s, int(m))


def arcface_loss(embeddings, weight, labels, s=30.0, m=0.5, eps=1e-6):
    """ArcFace (additive angular margin), per sample (B,): target logit s·cos(θ + m), see ``ArcFace``."""
    if not 0 <= m < math.pi:
        raise ValueError(f"arcface_loss: margin m must be in [0, π), got {m}")
    return _run(ArcFace, "arcface_loss", embeddings, weight, labels, s, m, eps)


# ---- pair and triplet losses -------------------------------------------------------------------------------
class TripletLoss(Function):
    """max(0, d(a,p) − d(a,n) + margin) with d(u,v) = √(‖u−v‖² + eps).
    Backward (active rows): ∂a = u − v, ∂p = −u, ∂n = v, with u = (a−p)/d(a,p), v = (a−n)/d(a,n)."""

    differentiable_backward = False

    def __init__(self, margin, eps):
        self.margin, self.eps = float(margin), float(eps)

    def forward(self, a, p, n):
        xp = get_array_module(a)
        dp, dn = a - p, a - n
        ap = xp.sqrt((dp * dp).sum(axis=1) + self.eps)
        an = xp.sqrt((dn * dn).sum(axis=1) + self.eps)
        h = ap - an + self.margin
        self.save_for_backward(dp, dn, ap, an, h > 0)
        return xp.maximum(h, 0)

    def backward(self, gy):
        dp, dn, ap, an, active = (t.data for t in self.saved_tensors)
        k = (gy.data * active)[:, None]
        u, v = dp / ap[:, None], dn / an[:, None]
        return Tensor(k * (u - v)), Tensor(-k * u), Tensor(k * v)

    def jvp(self, *tangents):
        raise NotImplementedError("TripletLoss is a fused op without a forward-mode rule (jvp): "
                                  "use triplet_loss_composed for forward mode")


def triplet_loss(anchor, positive, negative, margin=1.0, eps=1e-12):
    """Per-triplet hinge (B,): max(0, d(a,p) − d(a,n) + margin), Euclidean d smoothed by eps inside the root."""
    a, p, n = _check_same("triplet_loss", anchor, positive, negative)
    return TripletLoss(margin, eps)(a, p, n)


class ContrastiveLoss(Function):
    """same: ½‖x₁−x₂‖²; different: ½ max(0, margin − d)² with d = √(‖x₁−x₂‖² + eps).
    Backward: ∂x₁ = gy·δ (same) or −gy·max(0, margin − d)·δ/d (different), δ = x₁ − x₂; ∂x₂ = −∂x₁."""

    differentiable_backward = False

    def __init__(self, same, margin, eps):
        self.same, self.margin, self.eps = same, float(margin), float(eps)

    def forward(self, x1, x2):
        xp = get_array_module(x1)
        delta = x1 - x2
        sq = (delta * delta).sum(axis=1)
        d = xp.sqrt(sq + self.eps)
        gap = xp.maximum(self.margin - d, 0)
        self.save_for_backward(delta, d, gap)
        return xp.where(self.same, 0.5 * sq, 0.5 * gap * gap)

    def backward(self, gy):
        delta, d, gap = (t.data for t in self.saved_tensors)
        xp = get_array_module(d)
        k = gy.data * xp.where(self.same, 1, -gap / d)
        g = k[:, None] * delta
        return Tensor(g), Tensor(-g)

    def jvp(self, *tangents):
        raise NotImplementedError("ContrastiveLoss is a fused op without a forward-mode rule (jvp): "
                                  "use contrastive_loss_composed for forward mode")


@on_inputs_device
def contrastive_loss(x1, x2, same, margin=1.0, eps=1e-12):
    """Per-pair loss (B,) on pairs (x1[i], x2[i]); ``same[i]`` is 1 (True) when the pair should be close and
    0 (False) when it should be at least ``margin`` apart (the opposite of Hadsell et al.'s Y)."""
    a, b = _check_same("contrastive_loss", x1, x2)
    same = _int_labels("contrastive_loss", same, a.shape[0], a, arg="same", high=2)
    return ContrastiveLoss(same.astype(bool), margin, eps)(a, b)


# ---- composed references: the same losses from minigrad primitives ------------------------------------------
def _normalize_composed(a):
    return a / mg.maximum(mg.sqrt(mg.sum(a * a, axis=1, keepdims=True)), NORM_EPS)


@on_inputs_device
def _margin_softmax_composed(name, psi, embeddings, weight, labels, s):
    x, w = _check_pair(name, embeddings, weight)
    y = _int_labels(name, labels, x.shape[0], x, high=w.shape[0])
    cos = _normalize_composed(x) @ _normalize_composed(w).mT
    target = x.xp.arange(w.shape[0])[None, :] == y[:, None]
    z = mg.where(target, psi(cos), cos) * float(s)
    return mg.logsumexp(z, axis=1) - mg.sum(mg.where(target, z, 0.0), axis=1)


def normalized_softmax_loss_composed(embeddings, weight, labels, s=30.0):
    return _margin_softmax_composed("normalized_softmax_loss", lambda c: c, embeddings, weight, labels, s)


def am_softmax_loss_composed(embeddings, weight, labels, s=30.0, m=0.35):
    return _margin_softmax_composed("am_softmax_loss", lambda c: c - float(m), embeddings, weight, labels, s)


def a_softmax_loss_composed(embeddings, weight, labels, s=30.0, m=4):
    def psi(c):
        t0, t1 = mg.ones_like(c), c
        for _ in range(int(m) - 1):
            t0, t1 = t1, 2 * c * t1 - t0
        return mg.minimum(t1, c)
    return _margin_softmax_composed("a_softmax_loss", psi, embeddings, weight, labels, s)


def arcface_loss_composed(embeddings, weight, labels, s=30.0, m=0.5, eps=1e-6):
    cm, sm = math.cos(m), math.sin(m)

    def psi(c):
        sin = mg.sqrt(mg.maximum(1 - c * c, float(eps)))
        return mg.where(c.data > -cm, c * cm - sin * sm, c - (1 - cm))
    return _margin_softmax_composed("arcface_loss", psi, embeddings, weight, labels, s)


def _dist_composed(u, v, eps):
    d = u - v
    return mg.sqrt(mg.sum(d * d, axis=1) + float(eps))


def triplet_loss_composed(anchor, positive, negative, margin=1.0, eps=1e-12):
    a, p, n = _check_same("triplet_loss", anchor, positive, negative)
    return mg.relu(_dist_composed(a, p, eps) - _dist_composed(a, n, eps) + float(margin))


@on_inputs_device
def contrastive_loss_composed(x1, x2, same, margin=1.0, eps=1e-12):
    a, b = _check_same("contrastive_loss", x1, x2)
    same = _int_labels("contrastive_loss", same, a.shape[0], a, arg="same", high=2).astype(bool)
    d = a - b
    gap = mg.relu(float(margin) - _dist_composed(a, b, eps))
    return mg.where(same, 0.5 * mg.sum(d * d, axis=1), 0.5 * gap * gap)


# ---- a classification head for training ---------------------------------------------------------------------
LOSSES = {"softmax": normalized_softmax_loss, "am": am_softmax_loss, "a": a_softmax_loss, "arcface": arcface_loss}


class MarginHead(Module):
    """Class-weight matrix W (C, d) plus one of the cosine-softmax losses: ``head(emb, labels)`` is the mean loss.
    ``loss`` is "softmax", "am", "a" or "arcface"; extra keywords (s, m) go to the loss function."""

    def __init__(self, dim, num_classes, loss="am", device="cpu", **kwargs):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"MarginHead: loss must be one of {sorted(LOSSES)}, got {loss!r}")
        self.loss_fn, self.kwargs = LOSSES[loss], kwargs
        self.weight = Parameter(mg.randn(num_classes, dim, device=device))

    def forward(self, embeddings, labels):
        return mg.mean(self.loss_fn(embeddings, self.weight, labels, **self.kwargs))


# The references' earlier names, kept so that code written against them still runs.
normalized_softmax_loss_ref = normalized_softmax_loss_composed
am_softmax_loss_ref = am_softmax_loss_composed
a_softmax_loss_ref = a_softmax_loss_composed
arcface_loss_ref = arcface_loss_composed
triplet_loss_ref = triplet_loss_composed
contrastive_loss_ref = contrastive_loss_composed
