"""Linear-chain CRF: negative log-likelihood with an analytic forward–backward gradient, and Viterbi decoding.

A tag path y = (y_0 … y_{L-1}) of a sequence scores

    score(y) = start[y_0] + Σ_t h_t[y_t] + Σ_{t≥1} g[y_{t-1}, y_t] + end[y_{L-1}]

(emissions h (B, T, K), transitions g (K, K) from-tag × to-tag, optional start/end (K,)). The loss is
−score(gold) + log Z with log Z = log Σ_y exp score(y), computed by the forward recursion
α_t(j) = logsumexp_i(α_{t-1}(i) + g_ij) + h_t(j). ``LogPartition`` is one Function whose backward runs the
backward recursion and returns the tag and transition marginals (∂ log Z/∂h_t(j) = P(y_t = j), ∂ log Z/∂g_ij =
Σ_t P(y_{t-1} = i, y_t = j)). Both recursions run as matrix products in the exp domain, shifted by maxima, and
fall back to an exact log-domain step when a sum underflows (scores of ±1e4 stay exact).
``crf_log_partition_composed`` builds the same log Z from minigrad primitives: the reference the tests use.
Derivation: docs/derivations/crf.md. Tests: tests/models/test_crf.py.
"""
from minigrad import backend
from minigrad.backend import get_array_module, ignore_float_errors
from minigrad.core import Function, Tensor, as_tensor, no_grad, on_inputs_device
from minigrad.forward_ad import raw_tangent
from minigrad.ops import array_math
import minigrad as mg
from minigrad.nn import Module, Parameter

EXACT_STEPS = False  # True forces the log-domain step everywhere (slower; the tests use it to check the fallback)


# ---- argument checks ---------------------------------------------------------------------------------------
def _floating(name, arg, x, shape, dtype=None):
    x = as_tensor(x)
    if not backend.is_floating(x.dtype):
        raise TypeError(f"{name}: {arg} must be floating point, got {x.dtype}")
    if x.shape != shape:
        raise ValueError(f"{name}: {arg} must have shape {shape}, got {x.shape}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name}: {arg} is {x.dtype} but emissions are {dtype}; use one float dtype")
    return x


def _check(name, emissions, transitions, mask, start, end):
    """Validated (h, g, start, end, mask array); absent start/end become zeros that need no gradient."""
    h = as_tensor(emissions)
    if h.ndim != 3 or h.shape[1] == 0 or h.shape[2] == 0:
        raise ValueError(f"{name}: emissions must be (B, T, K) with T, K ≥ 1, got shape {h.shape}")
    if not backend.is_floating(h.dtype):
        raise TypeError(f"{name}: emissions must be floating point, got {h.dtype}")
    B, T, K = h.shape
    xp = h.xp
    g = _floating(name, "transitions", transitions, (K, K), h.dtype)
    s = Tensor(xp.zeros(K, h.dtype)) if start is None else _floating(name, "start", start, (K,), h.dtype)
    e = Tensor(xp.zeros(K, h.dtype)) if end is None else _floating(name, "end", end, (K,), h.dtype)
    return h, g, s, e, _check_mask(name, mask, (B, T), h)


def _check_mask(name, mask, shape, like):
    """The mask as a bool array on ``like``'s device; each row must be a non-empty prefix of True."""
    xp = like.xp
    if mask is None:
        return xp.ones(shape, dtype=bool)
    m = mask.data if isinstance(mask, Tensor) else mask
    m = backend.to_device(m, like.device) if backend.is_array(m) else xp.asarray(m)
    if m.dtype != bool:
        raise TypeError(f"{name}: mask must be boolean, got {m.dtype}")
    if m.shape != shape:
        raise ValueError(f"{name}: mask must have shape (B, T) = {shape}, got {m.shape}")
    if not bool(m[:, 0].all()):
        raise ValueError(f"{name}: mask[:, 0] must be True: every sequence needs at least one step")
    if not bool((m[:, 1:] <= m[:, :-1]).all()):
        bad = int(xp.nonzero((m[:, 1:] > m[:, :-1]).any(axis=1))[0][0])
        raise ValueError(f"{name}: mask must be a prefix of True followed by padding (False); row {bad} has "
                         "True after False")
    return m


def _check_tags(name, tags, mask, K, like):
    """Tags as an int64 array with padding positions set to 0; unmasked tags must lie in [0, K)."""
    xp = like.xp
    y = tags.data if isinstance(tags, Tensor) else tags
    y = backend.to_device(y, like.device) if backend.is_array(y) else xp.asarray(y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name}: tags must be integers, got {y.dtype}")
    if y.shape != mask.shape:
        raise ValueError(f"{name}: tags must have shape (B, T) = {mask.shape}, got {y.shape}")
    y = xp.where(mask, y, 0).astype("int64")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= K):
        raise ValueError(f"{name}: tags must lie in [0, {K}) where mask is True, got values in "
                         f"[{int(y.min())}, {int(y.max())}]")
    return y


# ---- the recursion step, exp domain with an exact fallback -------------------------------------------------
def _logmatmulexp(a, M, E, c, floor):
    """out[b, j] = logsumexp_i(a[b, i] + M[i, j]) as log(exp(a − m) @ E) + m + c, where E = exp(M − c), c is
    the column max of M and m the row max of a. Returns (out, S, m) with S the scaled sums, or (out, None, None)
    when some sum fell below ``floor`` = √tiny (terms lost to underflow could then matter) and the exact
    log-domain step over a (B, K, K) array was taken instead."""
    xp = get_array_module(a)
    if not EXACT_STEPS:
        m = a.max(axis=1, keepdims=True)
        S = xp.exp(a - m) @ E
        if S.min() >= floor:  # False for NaN too (rows of −inf)
            return xp.log(S) + m + c, S, m
    return array_math.logsumexp(a[:, :, None] + M, axis=1), None, None


def _scaled(M):
    """(E, c, floor): c the column max of M (0 for columns of −inf), E = exp(M − c), floor = √tiny."""
    xp = get_array_module(M)
    c = M.max(axis=0)
    c = xp.where(xp.isfinite(c), c, 0)
    return xp.ascontiguousarray(xp.exp(M - c)), c, float(xp.finfo(M.dtype).tiny) ** 0.5


def _alphas(h, g, s, e, mask):
    """Forward recursion: α (B, T, K) (carried unchanged over padding) and log Z (B,)."""
    xp = get_array_module(h)
    T = h.shape[1]
    E, c, floor = _scaled(g)
    alpha = xp.empty_like(h)
    alpha[:, 0] = s + h[:, 0]
    for t in range(1, T):
        a = _logmatmulexp(alpha[:, t - 1], g, E, c, floor)[0] + h[:, t]
        alpha[:, t] = xp.where(mask[:, t, None], a, alpha[:, t - 1])
    return alpha, array_math.logsumexp(alpha[:, T - 1] + e, axis=1)


def _marginal_grads(h, g, s, e, mask, alpha, logz, w):
    """Backward recursion β_t(i) = logsumexp_j(g_ij + h_{t+1}(j) + β_{t+1}(j)), β_{L-1} = end, then the
    gradients of Σ_b w_b log Z_b: w-weighted tag marginals (B, T, K), transition marginals summed over b and t
    (K, K), start and end marginals (K,)."""
    xp = get_array_module(h)
    B, T, K = h.shape
    gT = g.T
    E, c, floor = _scaled(gT)  # E[j, i] = exp(g_ij − max_j g_ij): the backward step reduces over the to-tag j
    beta, U = xp.empty_like(h), xp.empty_like(h)  # U_t = h_t + β_t
    S, M = xp.full_like(h, float("inf")), xp.zeros_like(h[:, :, :1])
    exact = []
    beta[:, T - 1] = e
    for t in range(T - 1, 0, -1):
        U[:, t] = h[:, t] + beta[:, t]
        b, St, mt = _logmatmulexp(U[:, t], gT, E, c, floor)
        if St is None:
            exact.append(t)
        else:
            S[:, t], M[:, t] = St, mt
        beta[:, t - 1] = xp.where(mask[:, t, None], b, beta[:, t])
    with ignore_float_errors():
        # P(y_t = j) = exp(α_t(j) + β_t(j) − log Z), with log Z taken per step as logsumexp_j(α_t + β_t) (equal
        # in exact arithmetic): α, β and log Z all grow like T·|logits| and the difference of the global log Z
        # would cancel catastrophically (float32 at logits ~1e4, float64 at ~1e30); the local one does not.
        # On padding the step repeats the last step's marginal.
        v = alpha + beta
        node = xp.exp(v - array_math.logsumexp(v, axis=2)[:, :, None])
        on = (mask[:, 1:] * w[:, None])[:, :, None]  # pairs (t−1, t) count only inside the sequence
        # P(y_{t-1}=i, y_t=j) = P(y_{t-1}=i) / S_t(i) · E_ji · exp(U_t(j) − m_t): summed over b, t by one matmul
        Q = (node[:, :-1] * on / S[:, 1:]).reshape(-1, K)
        W = xp.exp(U[:, 1:] - M[:, 1:]).reshape(-1, K)
        W[~xp.isfinite(W)] = 0  # steps taken exactly have S = inf, so Q = 0 there
        gg = (E * (xp.ascontiguousarray(W.T) @ Q)).T  # a transposed operand can be slow in threaded BLAS
        for t in exact:  # pair marginals of these steps in the log domain, normalised per step as above
            x = alpha[:, t - 1, :, None] + g + U[:, t, None, :]
            pair = xp.exp(x - array_math.logsumexp(x.reshape(B, K * K), axis=1)[:, None, None])
            gg += xp.where(on[:, t - 1, :, None] != 0, pair * on[:, t - 1, :, None], 0).sum(axis=0)
    wn = node * (w[:, None, None] * mask[:, :, None])
    last = alpha[:, T - 1] + e
    with ignore_float_errors():
        ends = xp.exp(last - array_math.logsumexp(last, axis=1)[:, None])
    return wn, gg, wn[:, 0].sum(axis=0), (ends * w[:, None]).sum(axis=0)


def _weights(x, axis):
    """softmax over ``axis``, 0 where every entry is −inf (a tag no path can reach)."""
    w = array_math.softmax(x, axis)
    w[get_array_module(w).isnan(w)] = 0
    return w


class LogPartition(Function):
    """log Z (B,) of a linear-chain CRF; backward = tag and transition marginals by forward–backward."""

    differentiable_backward = False

    def __init__(self, mask):
        self.mask = mask

    def forward(self, h, g, s, e):
        alpha, logz = _alphas(h, g, s, e, self.mask)
        self.save_for_backward(h, g, s, e, alpha, logz)
        return logz

    def backward(self, gy):
        h, g, s, e, alpha, logz = (x.data for x in self.saved_tensors)
        grads = _marginal_grads(h, g, s, e, self.mask, alpha, logz, gy.data)
        return tuple(Tensor(x) for x in grads)

    def jvp(self, th, tg, ts, te):
        """The tangent of the forward recursion: tα_t(j) = Σ_i w_t(i, j)·(tα_{t−1}(i) + tg_ij) + th_t(j), with
        w_t(·, j) = softmax_i(α_{t−1}(i) + g_ij); then t log Z = Σ_j softmax_j(α_T + e)·(tα_T(j) + te_j)."""
        tangents = (th, tg, ts, te)
        h, g, e = self.inputs[0].data, self.inputs[1].data, self.inputs[3].data
        alpha = self.saved[4].data if isinstance(self.saved[4], Tensor) else self.saved[4]
        xp = get_array_module(h)
        arr = lambda t, shape: xp.zeros(shape, h.dtype) if t is None else t.data
        th, tg, ts, te = arr(th, h.shape), arr(tg, g.shape), arr(ts, g.shape[:1]), arr(te, g.shape[:1])
        ta = ts + th[:, 0]
        for t in range(1, h.shape[1]):
            w = _weights(alpha[:, t - 1, :, None] + g, axis=1)
            a = (w * (ta[:, :, None] + tg)).sum(axis=1) + th[:, t]
            ta = xp.where(self.mask[:, t, None], a, ta)
        tz = (_weights(alpha[:, -1] + e, axis=1) * (ta + te)).sum(axis=1)
        return raw_tangent(self, tz, *self.inputs, *tangents)


@on_inputs_device
def crf_log_partition(emissions, transitions, mask=None, start=None, end=None):
    """log Σ_y exp score(y) per sequence, shape (B,): one Function with an analytic backward."""
    h, g, s, e, m = _check("crf_log_partition", emissions, transitions, mask, start, end)
    if h.shape[0] == 0:  # an empty batch: an empty result, zero gradients (the recursion needs a row)
        return mg.sum(h, axis=(1, 2)) + (mg.sum(g) + mg.sum(s) + mg.sum(e)) * 0.0
    return LogPartition(m)(h, g, s, e)


@on_inputs_device
def crf_marginals(emissions, transitions, mask=None, start=None, end=None):
    """Tag marginals P(y_t = j | x) (B, T, K), zero on padding: the gradient of log Z w.r.t. the emissions."""
    h, g, s, e, m = _check("crf_marginals", emissions, transitions, mask, start, end)
    if h.shape[0] == 0:
        return Tensor(h.xp.zeros(h.shape, h.dtype))
    alpha, logz = _alphas(h.data, g.data, s.data, e.data, m)
    w = h.xp.ones_like(logz)
    return Tensor(_marginal_grads(h.data, g.data, s.data, e.data, m, alpha, logz, w)[0])


@on_inputs_device
def crf_log_partition_composed(emissions, transitions, mask=None, start=None, end=None):
    """The same log Z from minigrad primitives (logsumexp per step): autograd derives the backward."""
    h, g, s, e, m = _check("crf_log_partition_composed", emissions, transitions, mask, start, end)
    alpha = s + h[:, 0]
    for t in range(1, h.shape[1]):
        a = mg.logsumexp(mg.unsqueeze(alpha, 2) + g, axis=1) + h[:, t]
        alpha = mg.where(m[:, t, None], a, alpha)
    return mg.logsumexp(alpha + e, axis=1)


@on_inputs_device
def crf_path_score(emissions, tags, transitions, mask=None, start=None, end=None):
    """score(y) (B,) of the given tag paths, from indexing ops (differentiable)."""
    h, g, s, e, m = _check("crf_path_score", emissions, transitions, mask, start, end)
    B, T, K = h.shape
    xp = h.xp
    y = _check_tags("crf_path_score", tags, m, K, h)
    on = m.astype(h.dtype)
    lengths = m.sum(axis=1)
    rows = xp.arange(B)
    score = mg.sum(h[rows[:, None], xp.arange(T)[None, :], y] * on, axis=1) + s[y[:, 0]]
    score = score + e[y[rows, lengths - 1]]
    if T > 1:
        score = score + mg.sum(g[y[:, :-1], y[:, 1:]] * on[:, 1:], axis=1)
    return score


def crf_nll(emissions, tags, transitions, mask=None, start=None, end=None):
    """Negative log-likelihood −score(tags) + log Z per sequence, shape (B,)."""
    return (crf_log_partition(emissions, transitions, mask, start, end)
            - crf_path_score(emissions, tags, transitions, mask, start, end))


def crf_nll_composed(emissions, tags, transitions, mask=None, start=None, end=None):
    """``crf_nll`` with the composed log Z (the reference of the tests and the benchmark)."""
    return (crf_log_partition_composed(emissions, transitions, mask, start, end)
            - crf_path_score(emissions, tags, transitions, mask, start, end))


# ---- decoding ------------------------------------------------------------------------------------------------
def _constraint(name, arg, allowed, shape, like):
    """A boolean constraint as an array on the device of the array ``like``."""
    xp = get_array_module(like)
    a = allowed.data if isinstance(allowed, Tensor) else allowed
    a = backend.to_device(a, backend.device_of(like)) if backend.is_array(a) else xp.asarray(a)
    if a.dtype != bool or a.shape != shape:
        raise ValueError(f"{name}: {arg} must be a boolean array of shape {shape}, got {a.dtype} {a.shape}")
    return a


@on_inputs_device
def viterbi_decode(emissions, transitions, mask=None, start=None, end=None, allowed=None, allowed_start=None,
                   allowed_end=None):
    """Best tag paths (B, T) int64 (−1 on padding) and their scores (B,), vectorised over the batch.

    ``allowed`` (K, K) bool forbids the transitions where it is False; ``allowed_start`` / ``allowed_end`` (K,)
    forbid first / last tags (e.g. BMES: no M or E first). A sequence with no legal path scores −inf.
    The forward pass keeps only the max (δ_t); the backtrace recovers each argmax from δ_t in O(BK) per step.
    """
    name = "viterbi_decode"
    h, g, s, e, m = _check(name, emissions, transitions, mask, start, end)
    h, g, s, e = h.data, g.data, s.data, e.data
    xp = get_array_module(h)
    B, T, K = h.shape
    ninf = float("-inf")
    if allowed is not None:
        g = xp.where(_constraint(name, "allowed", allowed, (K, K), h), g, ninf)
    if allowed_start is not None:
        s = xp.where(_constraint(name, "allowed_start", allowed_start, (K,), h), s, ninf)
    if allowed_end is not None:
        e = xp.where(_constraint(name, "allowed_end", allowed_end, (K,), h), e, ninf)
    delta = xp.empty_like(h)
    delta[:, 0] = s + h[:, 0]
    for t in range(1, T):
        d = (delta[:, t - 1, :, None] + g).max(axis=1) + h[:, t]
        delta[:, t] = xp.where(m[:, t, None], d, delta[:, t - 1])
    final = delta[:, T - 1] + e
    paths = xp.empty((B, T), dtype="int64")
    paths[:, T - 1] = final.argmax(axis=1)
    rows = xp.arange(B)
    scores = final[rows, paths[:, T - 1]]
    for t in range(T - 2, -1, -1):
        nxt = paths[:, t + 1]
        best = (delta[:, t] + g[:, nxt].T).argmax(axis=1)
        paths[:, t] = xp.where(m[:, t + 1], best, nxt)
    paths[~m] = -1
    return Tensor(paths), Tensor(scores)


def allowed_transitions(tags, scheme="BMES"):
    """Legal (transitions (K, K), first tags (K,), last tags (K,)) as nested bool lists for a tagging scheme.

    ``scheme="BMES"``: tags are "B", "M", "E", "S" (begin/middle/end of a word, single-character word).
    ``scheme="BIO"``: tags are "O", "B-X", "I-X"; I-X only continues B-X or I-X.
    """
    tags = list(tags)
    if scheme == "BMES":
        follows = {"B": "ME", "M": "ME", "E": "BS", "S": "BS"}
        for t in tags:
            if t not in follows:
                raise ValueError(f"allowed_transitions: BMES tags are B, M, E, S; got {t!r}")
        allowed = [[b in follows[a] for b in tags] for a in tags]
        return allowed, [t in "BS" for t in tags], [t in "ES" for t in tags]
    if scheme == "BIO":
        def ok(a, b):
            return not b.startswith("I-") or a[2:] == b[2:] and a[:2] in ("B-", "I-")
        allowed = [[ok(a, b) for b in tags] for a in tags]
        return allowed, [not t.startswith("I-") for t in tags], [True] * len(tags)
    raise ValueError(f"allowed_transitions: scheme must be 'BMES' or 'BIO', got {scheme!r}")


# ---- the layer -----------------------------------------------------------------------------------------------
class CRF(Module):
    """A CRF output layer: transitions (K, K), start (K,) and end (K,) scores, uniform in ±0.1 at first.

    ``nll(emissions, tags, mask)`` is the training loss; ``decode(emissions, mask)`` the Viterbi paths.
    ``allowed`` / ``allowed_start`` / ``allowed_end`` (see ``allowed_transitions``) constrain decoding only.
    """

    def __init__(self, num_tags, allowed=None, allowed_start=None, allowed_end=None, dtype=None, device="cpu"):
        super().__init__()
        if int(num_tags) < 1:
            raise ValueError(f"CRF: num_tags must be ≥ 1, got {num_tags}")
        self.num_tags = K = int(num_tags)
        self.transitions = Parameter(mg.rand(K, K, dtype=dtype, device=device) * 0.2 - 0.1)
        self.start = Parameter(mg.rand(K, dtype=dtype, device=device) * 0.2 - 0.1)
        self.end = Parameter(mg.rand(K, dtype=dtype, device=device) * 0.2 - 0.1)
        self.allowed, self.allowed_start, self.allowed_end = allowed, allowed_start, allowed_end

    def nll(self, emissions, tags, mask=None, reduction="mean"):
        """Negative log-likelihood: per sequence ("none"), "sum", "mean" over sequences or "token_mean"."""
        loss = crf_nll(emissions, tags, self.transitions, mask, self.start, self.end)
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        if reduction == "mean":
            return loss.mean()
        if reduction == "token_mean":
            n = loss.shape[0] * emissions.shape[1] if mask is None else int(as_tensor(mask).data.sum())
            return loss.sum() * (1.0 / n)
        raise ValueError(f"CRF.nll: reduction must be 'none', 'sum', 'mean' or 'token_mean', got {reduction!r}")

    forward = nll

    def decode(self, emissions, mask=None):
        """Viterbi paths (B, T) (−1 on padding) and their scores (B,)."""
        with no_grad():
            return viterbi_decode(emissions, self.transitions, mask, self.start, self.end, self.allowed,
                                  self.allowed_start, self.allowed_end)

    def marginals(self, emissions, mask=None):
        return crf_marginals(emissions, self.transitions, mask, self.start, self.end)
