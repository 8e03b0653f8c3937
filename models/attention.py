"""Attention and the Transformer encoder (Vaswani et al., 2017, "Attention Is All You Need").

``scaled_dot_product_attention`` is one Function with a hand-written backward (derivation:
docs/derivations/attention.md); ``attention_composed`` is the same maths from primitive ops, the reference the
tests hold it to. On top: ``MultiHeadAttention``, sinusoidal and learned position embeddings,
``TransformerEncoderLayer`` and ``TransformerEncoder`` with PyTorch's parameter names and mask conventions.
"""
import copy
import math

import minigrad as mg
import minigrad.functional as F
from minigrad import backend, nn
from minigrad.backend import get_array_module
from minigrad.core import Function, Tensor, as_tensor, on_inputs_device
from minigrad.forward_ad import raw_tangent
from minigrad.ops import array_math


# ---- masks, dropout and argument checks shared by the fused and the composed attention --------------------------
def _allowed(mask, causal, Tq, Tk, xp):
    """Boolean "may attend" array broadcastable to the scores ``(…, Tq, Tk)``, or None when all may attend.
    ``causal`` keeps key j ≤ query i (top-left aligned, as PyTorch's ``is_causal``)."""
    if causal:
        tri = xp.tri(Tq, Tk, dtype=bool)
        return tri if mask is None else mask & tri
    return mask


def _draw_seed(device):
    """A fresh seed from minigrad's seeded generator (NumPy's or CuPy's: both draw floats)."""
    return int(float(backend.generator(device).random(1)[0]) * 2 ** 31)


def _keep_scale(p):
    return 65536.0 / (65536 - round(p * 65536))


def _keep(seed, shape, p, xp):
    """The dropout keep mask (boolean) and the scale of kept entries, from a generator seeded with ``seed``.
    An entry drops when its 16-bit draw is below t = round(p·2¹⁶): the rate is t/2¹⁶ (within 8·10⁻⁶ of p) and
    kept entries are scaled by 2¹⁶/(2¹⁶ − t), so the expectation is exact. On the host the draws are 16-bit
    integers (3× cheaper than floats); CuPy's generator draws floats u, and u·2¹⁶ ≥ t is the same test."""
    rng, t = xp.random.default_rng(seed), round(p * 65536)
    if xp is backend.np:
        keep = rng.integers(0, 65536, size=shape, dtype=xp.uint16) >= t
    else:
        keep = rng.random(shape, dtype="float32") * 65536.0 >= t
    return keep, _keep_scale(p)


def _check(q, k, v, mask, dropout_p, name):
    """Tensors for q, k, v; the mask as a boolean array; the scores' shape. Clear errors for bad input."""
    q, k, v = as_tensor(q), as_tensor(k), as_tensor(v)
    for n, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim < 2 or not backend.is_floating(t.dtype):
            raise ValueError(f"{name}: {n} must be a floating array of shape (..., T, d), got {t.shape} {t.dtype}")
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"{name}: q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{name}: q (..., Tq, d) and k (..., Tk, d) need the same d, got q {q.shape}, k {k.shape}")
    if k.shape[-2] == 0:
        raise ValueError(f"{name}: attention needs at least one key, got k {k.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{name}: k (..., Tk, d) and v (..., Tk, dv) need the same Tk, got k {k.shape}, v {v.shape}")
    try:
        batch = backend.np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(f"{name}: batch axes of q {q.shape}, k {k.shape}, v {v.shape} do not broadcast") from None
    scores = tuple(batch) + (q.shape[-2], k.shape[-2])
    if mask is not None:
        mask = q.xp.asarray(mask.data if isinstance(mask, Tensor) else mask)  # a host mask moves to q's device
        if mask.dtype != bool:
            raise TypeError(f"{name}: mask must be boolean (True = may attend), got {mask.dtype}")
        try:
            ok = backend.np.broadcast_shapes(mask.shape, scores) == scores
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{name}: mask of shape {mask.shape} does not broadcast to the scores {scores} "
                             f"(q {q.shape}, k {k.shape})")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{name}: dropout_p must be in [0, 1), got {dropout_p}")
    return q, k, v, mask, scores


# ---- the fused op ---------------------------------------------------------------------------------------------
class ScaledDotProductAttention(Function):
    """O = dropout(softmax(c·QKᵀ masked)) V with c = 1/√d.

    Backward with P the softmax, K̃ the dropout multiplier, Pd = P ⊙ K̃, G = ∂L/∂O:
        ∂V = Pdᵀ G,   dP = (G Vᵀ) ⊙ K̃,   ∂S = P ⊙ (dP − rowsum(dP ⊙ P)),   ∂Q = c ∂S K,   ∂K = c ∂Sᵀ Q.
    Saved: q, k, v and either P or only its log-sum-exp (``recompute=True``: P is rebuilt in backward);
    the dropout mask packed to one bit per weight. The softmax is computed in place on the scores, shifted by
    ``array_math.max_shift``; a query that may attend nowhere gets all-zero weights.
    """

    differentiable_backward = False

    def __init__(self, shape, allowed, scale, dropout_p, seed, recompute):
        self.shape, self.allowed, self.scale = shape, allowed, scale
        self.dropout_p, self.seed, self.recompute = dropout_p, seed, recompute

    def _scores(self, q, k):
        xp = get_array_module(q)
        s = xp.matmul(q, xp.swapaxes(k, -1, -2))
        if s.shape != self.shape:  # v's batch axes can be wider than those of q and k
            s = xp.broadcast_to(s, self.shape).copy()
        s *= self.scale
        if self.allowed is not None:
            xp.copyto(s, -xp.inf, where=~self.allowed)
        return s

    def forward(self, q, k, v):
        xp = get_array_module(q)
        p = self._scores(q, k)
        m = array_math.max_shift(p, -1)  # 0 on a fully masked row, whose max is −inf
        p -= m
        xp.exp(p, out=p)
        total = p.sum(axis=-1, keepdims=True)
        nonempty = None
        if self.allowed is not None:
            nonempty = total > 0
            total = xp.where(nonempty, total, 1)  # fully masked rows stay all-zero instead of 0/0
        p /= total
        packed_keep = None
        if self.dropout_p:
            keep, kept_scale = _keep(self.seed, p.shape, self.dropout_p, xp)
            packed_keep = xp.packbits(keep.ravel())  # one bit per weight
            o = xp.matmul(p * keep, v)
            o *= kept_scale  # scale the small (Tq, dv) result, not the (Tq, Tk) weights
        else:
            o = xp.matmul(p, v)
        if self.recompute:
            lse = m + xp.log(total)
            if nonempty is not None:  # lse = +inf on fully masked rows makes exp(s − lse) = 0 there
                lse = xp.where(nonempty, lse, xp.inf)
            self.save_for_backward(q, k, v, None, lse.astype(p.dtype, copy=False), packed_keep)
        else:
            self.save_for_backward(q, k, v, p, None, packed_keep)
        return o

    def backward(self, go):
        xp = get_array_module(go.data)
        q, k, v, p, lse, packed_keep = (None if t is None else t.data for t in self.saved_tensors)
        g = go.data
        if self.recompute:
            p = self._scores(q, k)
            p -= lse
            xp.exp(p, out=p)
        keep = None
        if self.dropout_p:
            keep = xp.unpackbits(packed_keep)[:p.size].reshape(p.shape).view(bool)
            g = g * _keep_scale(self.dropout_p)  # dP = (G Vᵀ) ⊙ K̃ with K̃ = keep·scale: scale the small G instead
        need_q, need_k, need_v = self.needs_input_grad
        gv = buf = None
        if need_v:
            pd = p if keep is None else p * keep
            gv = Tensor(array_math.sum_to(xp.matmul(xp.swapaxes(pd, -1, -2), g), v.shape))
            buf = pd if keep is not None else None  # reuse the (Tq, Tk) buffer: fresh pages are not free
        if not (need_q or need_k):
            return None, None, gv
        ds = xp.matmul(g, xp.swapaxes(v, -1, -2), out=buf)  # dP, then ∂S/c in place
        if keep is not None:
            ds *= keep
        ds -= xp.einsum("...ij,...ij->...i", ds, p)[..., None]  # D = rowsum(dP ⊙ P)
        ds *= p
        gq = gk = None
        if need_q:
            gq = xp.matmul(ds, k)
            gq *= self.scale
            gq = Tensor(array_math.sum_to(gq, q.shape))
        if need_k:
            gk = xp.matmul(xp.swapaxes(ds, -1, -2), q)
            gk *= self.scale
            gk = Tensor(array_math.sum_to(gk, k.shape))
        return gq, gk, gv

    def jvp(self, tq, tk, tv):
        """tO = (P ⊙ (tS − rowsum(P ⊙ tS)) ⊙ K̃) V + (P ⊙ K̃) tV with tS = c(tQ Kᵀ + Q tKᵀ), on raw arrays."""
        (q, k, v) = (t.data for t in self.inputs)
        p, lse, packed_keep = (t.data if isinstance(t, Tensor) else t for t in self.saved[3:])
        xp = get_array_module(q)
        if self.recompute:
            p = xp.exp(self._scores(q, k) - lse)
        keep = None
        if self.dropout_p:
            keep = xp.unpackbits(packed_keep)[:p.size].reshape(p.shape).view(bool) * _keep_scale(self.dropout_p)
        out = 0
        if tv is not None:
            out = out + xp.matmul(p if keep is None else p * keep, tv.data)
        if tq is not None or tk is not None:
            ts = 0
            if tq is not None:
                ts = ts + xp.matmul(tq.data, xp.swapaxes(k, -1, -2))
            if tk is not None:
                ts = ts + xp.matmul(q, xp.swapaxes(tk.data, -1, -2))
            tp = p * (ts * self.scale - (p * ts).sum(axis=-1, keepdims=True) * self.scale)
            out = out + xp.matmul(tp if keep is None else tp * keep, v)
        return raw_tangent(self, out, *self.inputs, tq, tk, tv)


@on_inputs_device
def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0, causal=False, scale=None, recompute=False):
    """softmax(q kᵀ/√d) v as one fused Function with a hand-written backward.

    q ``(…, Tq, d)``, k ``(…, Tk, d)``, v ``(…, Tk, dv)`` (batch axes broadcast) → ``(…, Tq, dv)``.
    ``mask``: boolean, broadcastable to ``(…, Tq, Tk)``, True = may attend (PyTorch's SDPA convention);
    ``causal`` adds "key j ≤ query i". A query that may attend nowhere gets zeros (and zero gradients), never NaN.
    ``dropout_p`` drops attention weights with minigrad's seeded generator (applied whenever > 0: modules pass
    0 in eval mode). ``recompute=True`` saves only the log-sum-exp per query row instead of the ``(Tq, Tk)``
    probabilities and recomputes them in backward (less memory, more time).
    """
    q, k, v, mask, scores = _check(q, k, v, mask, dropout_p, "scaled_dot_product_attention")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    seed = _draw_seed(q.device) if dropout_p else None
    allowed = _allowed(mask, causal, scores[-2], scores[-1], q.xp)
    return ScaledDotProductAttention(scores, allowed, scale, float(dropout_p), seed, bool(recompute))(q, k, v)


@on_inputs_device
def attention_composed(q, k, v, mask=None, dropout_p=0.0, causal=False, scale=None, return_weights=False):
    """The same attention built from primitive ops (matmul, where, softmax, mul): the reference for the fused
    op, and the path that can return the (differentiable, post-dropout) weights and second derivatives."""
    q, k, v, mask, scores = _check(q, k, v, mask, dropout_p, "attention_composed")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    seed = _draw_seed(q.device) if dropout_p else None
    allowed = _allowed(mask, causal, scores[-2], scores[-1], q.xp)
    s = mg.matmul(q, k.mT) * scale
    rows = None
    if allowed is not None:
        s = mg.where(allowed, s, float("-inf"))
        rows = allowed.any(axis=-1, keepdims=True)
        if bool(rows.all()):
            rows = None
        else:  # softmax of an all −inf row is 0/0: give it a zero row first, then zero its weights
            s = mg.where(rows, s, 0.0)
    p = mg.softmax(s, axis=-1)
    if rows is not None:
        p = p * Tensor(rows.astype(p.dtype))
    if dropout_p:
        keep, kept_scale = _keep(seed, scores, float(dropout_p), q.xp)
        p = p * Tensor(keep.astype(p.dtype) * kept_scale)
    out = mg.matmul(p, v)
    return (out, p) if return_weights else out


# ---- modules --------------------------------------------------------------------------------------------------
def _xavier(shape, device, dtype):
    return nn.init.xavier_uniform_(nn.Parameter(mg.zeros(*shape, dtype=dtype, device=device)))


def _bool_array(mask, name, like):
    mask = mask.data if isinstance(mask, Tensor) else like.xp.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"MultiHeadAttention: {name} must be boolean (True = ignore, as in PyTorch), got {mask.dtype}; "
                        "additive float masks are not supported")
    return mask


class MultiHeadAttention(nn.Module):
    """Multi-head attention with PyTorch's ``nn.MultiheadAttention`` interface and parameter names
    (``in_proj_weight`` (3E, E), ``in_proj_bias``, ``out_proj``; ``q/k/v_proj_weight`` when kdim/vdim ≠ E).

    head_i = attention(Q W_qᵢ, K W_kᵢ, V W_vᵢ); out = concat(head_1..h) W_o. Masks follow PyTorch's *module*
    convention: ``key_padding_mask`` (B, S) and boolean ``attn_mask`` (L, S) or (B·h, L, S) are True where a
    position must be IGNORED (the opposite of ``scaled_dot_product_attention``'s mask, as in PyTorch).
    ``need_weights=True`` returns the head-averaged weights and, like PyTorch, takes the slower composed path;
    ``fused=False`` always takes it; ``recompute=True`` makes the fused op keep only the log-sum-exp.
    A query whose keys are all padding gets zeros, never NaN.
    """

    def __init__(self, d_model, num_heads, dropout=0.0, bias=True, kdim=None, vdim=None, batch_first=False,
                 fused=True, recompute=False, device="cpu", dtype=None):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"MultiHeadAttention: d_model={d_model} is not divisible by num_heads={num_heads}")
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.kdim, self.vdim = kdim or d_model, vdim or d_model
        self.dropout, self.batch_first, self.fused, self.recompute = float(dropout), batch_first, fused, recompute
        self.packed = self.kdim == self.vdim == d_model
        E = d_model
        if self.packed:
            self.in_proj_weight = _xavier((3 * E, E), device, dtype)
        else:
            for name, dim in (("q", E), ("k", self.kdim), ("v", self.vdim)):
                setattr(self, f"{name}_proj_weight", _xavier((E, dim), device, dtype))
        self.register_parameter("in_proj_bias", nn.Parameter(mg.zeros(3 * E, dtype=dtype, device=device))
                                if bias else None)
        self.out_proj = nn.Linear(E, E, bias=bias, device=device, dtype=dtype)
        if bias:
            nn.init.zeros_(self.out_proj.bias)

    def extra_repr(self):
        return f"d_model={self.d_model}, num_heads={self.num_heads}, dropout={self.dropout}"

    def _projections(self, query, key, value):
        """Q, K, V projections on rows (B·T, E): a 2-D weight gradient is one product, not a batch of them."""
        E, b = self.d_model, self.in_proj_bias
        rows = lambda x: x.reshape(-1, x.shape[-1])
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if self.packed:
            if query is key and key is value:  # self-attention: one (B·L, E) × (E, 3E) product
                return mg.split(F.linear(rows(query), self.in_proj_weight, b), 3, axis=-1)
            W = self.in_proj_weight
            wq, wk, wv = W[:E], W[E:2 * E], W[2 * E:]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return F.linear(rows(query), wq, bq), F.linear(rows(key), wk, bk), F.linear(rows(value), wv, bv)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        same = query is key and key is value
        if not self.batch_first:
            query, key, value = (x.swapaxes(0, 1) for x in (query, key, value))
            if same:
                key = value = query
        if query.ndim != 3 or key.ndim != 3 or value.ndim != 3:
            raise ValueError(f"MultiHeadAttention: query, key, value must be 3-D (batch_first={self.batch_first}), "
                             f"got {query.shape}, {key.shape}, {value.shape}")
        (B, L, E), S = query.shape, key.shape[1]
        if E != self.d_model or key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise ValueError(f"MultiHeadAttention(d_model={self.d_model}, kdim={self.kdim}, vdim={self.vdim}): "
                             f"got query {query.shape}, key {key.shape}, value {value.shape}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != B:
            raise ValueError(f"MultiHeadAttention: query {query.shape}, key {key.shape} and value {value.shape} "
                             "disagree on batch size or key length")
        h, hd = self.num_heads, self.head_dim
        q, k, v = (x.reshape(B, -1, h, hd).swapaxes(1, 2) for x in self._projections(query, key, value))

        allowed = None
        if key_padding_mask is not None:
            kpm = _bool_array(key_padding_mask, "key_padding_mask", query)
            if kpm.shape != (B, S):
                raise ValueError(f"MultiHeadAttention: key_padding_mask must have shape (batch, S) = {(B, S)}, "
                                 f"got {kpm.shape}")
            allowed = ~kpm[:, None, None, :]
        if attn_mask is not None:
            am = _bool_array(attn_mask, "attn_mask", query)
            if am.shape == (B * h, L, S):
                am = am.reshape(B, h, L, S)
            elif am.shape != (L, S):
                raise ValueError(f"MultiHeadAttention: attn_mask must have shape (L, S) = {(L, S)} or (B·heads, L, S)"
                                 f" = {(B * h, L, S)}, got {am.shape}")
            allowed = ~am if allowed is None else allowed & ~am
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights or not self.fused:
            out, weights = attention_composed(q, k, v, allowed, p, is_causal, return_weights=True)
        else:
            out = scaled_dot_product_attention(q, k, v, allowed, p, is_causal, recompute=self.recompute)
        out = self.out_proj(out.swapaxes(1, 2).reshape(B * L, E)).reshape(B, L, E)
        if not self.batch_first:
            out = out.swapaxes(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(axis=1)
        return out, weights


def sinusoidal_position_encoding(positions, d_model, base=10000.0, dtype=None):
    """PE[p, 2i] = sin(p·ωᵢ), PE[p, 2i+1] = cos(p·ωᵢ) with ωᵢ = base^(−2i/d): an array of shape (…, d_model)
    for an array of (integer or real) positions; computed in float64, returned in ``dtype`` (float32)."""
    if d_model % 2:
        raise ValueError(f"sinusoidal_position_encoding: d_model must be even, got {d_model}")
    xp = get_array_module(positions)
    omega = base ** (-xp.arange(0, d_model, 2, dtype="float64") / d_model)
    angle = xp.asarray(positions, dtype="float64")[..., None] * omega
    pe = xp.stack([xp.sin(angle), xp.cos(angle)], axis=-1).reshape(angle.shape[:-1] + (d_model,))
    return pe.astype(dtype or backend.DEFAULT_FLOAT)


def sinusoidal_shift_matrix(k, d_model, base=10000.0):
    """The matrix M_k with PE(p + k) = M_k PE(p) for every p: block-diagonal 2×2 rotations by k·ωᵢ.
    (sin(p+k)ω, cos(p+k)ω) = ((cos kω) sin pω + (sin kω) cos pω, −(sin kω) sin pω + (cos kω) cos pω)."""
    xp = backend.np
    omega = base ** (-xp.arange(0, d_model, 2, dtype="float64") / d_model)
    c, s = xp.cos(k * omega), xp.sin(k * omega)
    M = xp.zeros((d_model, d_model))
    i = xp.arange(0, d_model, 2)
    M[i, i], M[i, i + 1], M[i + 1, i], M[i + 1, i + 1] = c, s, -s, c
    return M


class SinusoidalPositionEmbedding(nn.Module):
    """Adds the fixed sin/cos encoding of positions ``offset, offset+1, …`` along axis −2 of ``x (…, T, d)``.
    No parameters; PE(p+k) is a fixed linear map (``sinusoidal_shift_matrix``) of PE(p), so relative offsets
    are linear functions of the code."""

    def __init__(self, d_model, base=10000.0):
        super().__init__()
        if d_model % 2:
            raise ValueError(f"SinusoidalPositionEmbedding: d_model must be even, got {d_model}")
        self.d_model, self.base = d_model, base

    def forward(self, x, offset=0):
        if x.ndim < 2 or x.shape[-1] != self.d_model:
            raise ValueError(f"SinusoidalPositionEmbedding(d_model={self.d_model}): x must be (..., T, "
                             f"{self.d_model}), got {x.shape}")
        pos = x.xp.arange(offset, offset + x.shape[-2])
        return x + Tensor(sinusoidal_position_encoding(pos, self.d_model, self.base, x.dtype))


class LearnedPositionEmbedding(nn.Module):
    """Adds a trained vector per position along axis −2: ``weight`` (max_len, d) starts as N(0, std²), by default
    on the scale of ``nn.Embedding``'s N(0, 1) token vectors (a much smaller start lets the token vectors drown
    the positions: the reversal example then never finds them)."""

    def __init__(self, max_len, d_model, std=1.0, device="cpu", dtype=None):
        super().__init__()
        self.max_len, self.d_model = max_len, d_model
        self.weight = nn.Parameter((mg.randn(max_len, d_model, dtype=dtype, device=device) * float(std)).data)

    def forward(self, x, offset=0):
        T = x.shape[-2]
        if x.shape[-1] != self.d_model or offset + T > self.max_len:
            raise ValueError(f"LearnedPositionEmbedding(max_len={self.max_len}, d_model={self.d_model}): got x "
                             f"{x.shape} at offset {offset}")
        return x + self.weight[offset:offset + T]


_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class TransformerEncoderLayer(nn.Module):
    """Self-attention + feed-forward block with PyTorch's ``nn.TransformerEncoderLayer`` names and arguments.

    post-norm (``norm_first=False``, the 2017 paper): x = LN₁(x + SA(x)); x = LN₂(x + FF(x))
    pre-norm  (``norm_first=True``):                   x = x + SA(LN₁(x)); x = x + FF(LN₂(x))
    with FF(x) = W₂ dropout(act(W₁ x)) and dropout on both residual branches.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, fused=True, device="cpu", dtype=None):
        super().__init__()
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(f"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a callable, "
                                 f"got {activation!r}")
            activation = _ACTIVATIONS[activation]
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout, bias, batch_first=batch_first, fused=fused,
                                            device=device, dtype=dtype)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation, self.norm_first = activation, norm_first

    def _sa(self, x, mask, padding, is_causal):
        out = self.self_attn(x, x, x, key_padding_mask=padding, attn_mask=mask, need_weights=False,
                             is_causal=is_causal)[0]
        return self.dropout1(out)

    def _ff(self, x):
        h = self.dropout(self.activation(self.linear1(x.reshape(-1, x.shape[-1]))))
        return self.dropout2(self.linear2(h)).reshape(x.shape)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff(x))


class TransformerEncoder(nn.Module):
    """``num_layers`` encoder layers in a row (``layers.0``, ``layers.1``, … as in PyTorch), then ``norm``.

    ``encoder_layer``: a layer (deep-copied, so the copies do not share weights, as in PyTorch) or a
    zero-argument factory that builds a fresh layer each call."""

    def __init__(self, encoder_layer, num_layers, norm=None):
        super().__init__()
        if isinstance(encoder_layer, nn.Module):
            layers = [copy.deepcopy(encoder_layer) for _ in range(num_layers)]
        elif callable(encoder_layer):
            layers = [encoder_layer() for _ in range(num_layers)]
        else:
            raise TypeError(f"TransformerEncoder: encoder_layer must be a Module or a factory, got "
                            f"{type(encoder_layer).__name__}")
        self.layers = nn.ModuleList(layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return x if self.norm is None else self.norm(x)
