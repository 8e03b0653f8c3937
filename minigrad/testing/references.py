"""float64 NumPy references for every fused or hand-written op, written from the definition (loops over
outputs, or the plain textbook formula), sharing no code with minigrad: with PyTorch absent these are what the
forward values are judged against (tests/test_references.py); finite differences of the op judge its gradient."""
import itertools
import math

import numpy as np


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _lse(x):
    m = x.max()
    return m + math.log(np.exp(x - m).sum())


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softplus(x):
    return np.log1p(np.exp(-abs(x))) + np.maximum(x, 0)


# ---- attention ------------------------------------------------------------------------------------------------
def attention(q, k, v, allowed=None, causal=False, scale=None, keep=None, p=0.0):
    """out[b, i] = Σ_j w_ij v[b, j], w_i = softmax_j(scale·⟨q_i, k_j⟩) over the keys i may attend (True in
    ``allowed``; ``causal``: j ≤ i), zero when it may attend none; dropout: w_ij·keep_ij/(1 − p)."""
    Tq, d = q.shape[-2:]
    Tk = k.shape[-2]
    scale = 1 / math.sqrt(d) if scale is None else scale
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    allowed = np.ones((Tq, Tk), bool) if allowed is None else np.asarray(allowed)
    full = np.broadcast_to(allowed, batch + (Tq, Tk))
    out = np.zeros(batch + (Tq, v.shape[-1]))
    for b in np.ndindex(*batch):
        qb, kb, vb = (np.broadcast_to(a, batch + a.shape[-2:])[b] for a in (q, k, v))
        for i in range(Tq):
            may = [j for j in range(Tk) if full[b][i, j] and (not causal or j <= i)]
            if not may:
                continue
            s = np.array([scale * sum(qb[i, t] * kb[j, t] for t in range(d)) for j in may])
            w = _softmax(s)
            for w_j, j in zip(w, may):
                if keep is not None:
                    w_j = w_j * np.broadcast_to(keep, batch + (Tq, Tk))[b][i, j] / (1 - p)
                out[b][i] += w_j * vb[j]
    return out


def multi_head_attention(query, key, value, in_w, in_b, out_w, out_b, num_heads, key_padding_mask=None,
                         attn_mask=None, is_causal=False):
    """PyTorch's MultiheadAttention (batch first): project, split into heads, attend, concatenate, project.
    ``key_padding_mask`` (B, S) and ``attn_mask`` (L, S) are True where attending is *not* allowed."""
    B, L, E = query.shape
    S = key.shape[1]
    hd = E // num_heads
    wq, wk, wv = in_w[:E], in_w[E:2 * E], in_w[2 * E:]
    bq, bk, bv = (np.zeros(E),) * 3 if in_b is None else (in_b[:E], in_b[E:2 * E], in_b[2 * E:])
    out = np.zeros((B, L, E))
    for b in range(B):
        allowed = np.ones((L, S), bool)
        if key_padding_mask is not None:
            allowed &= ~key_padding_mask[b][None, :]
        if attn_mask is not None:
            allowed &= ~attn_mask
        heads = []
        for h in range(num_heads):
            sl = slice(h * hd, (h + 1) * hd)
            q = query[b] @ wq[sl].T + bq[sl]
            k = key[b] @ wk[sl].T + bk[sl]
            v = value[b] @ wv[sl].T + bv[sl]
            heads.append(attention(q, k, v, allowed, is_causal))
        out[b] = np.concatenate(heads, axis=-1) @ out_w.T + (0 if out_b is None else out_b)
    return out


# ---- convolution and pooling ----------------------------------------------------------------------------------
def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Cross-correlation: y[n, o, i, j] = b[o] + Σ_{c∈group(o), u, v} x_pad[n, c, i·s + u·d, j·s + v·d]
    · w[o, c, u, v]."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    Ho = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    y = np.zeros((N, O, Ho, Wo))
    per_group = O // groups
    for n, o, i, j in itertools.product(range(N), range(O), range(Ho), range(Wo)):
        g = o // per_group
        acc = 0.0 if b is None else b[o]
        for c, u, v in itertools.product(range(Cg), range(KH), range(KW)):
            acc += xp[n, g * Cg + c, i * sh + u * dh, j * sw + v * dw] * w[o, c, u, v]
        y[n, o, i, j] = acc
    return y


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    return conv2d(x[:, :, None, :], w[:, :, None, :], b, (1, stride), (0, padding), (1, dilation), groups)[:, :, 0]


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The adjoint of conv2d: every input pixel scatters x[n, c, i, j]·w[c, o, u, v] to the padded output at
    (i·s + u·d, j·s + v·d); the padding is then cropped off."""
    (sh, sw), (ph, pw), (oh, ow), (dh, dw) = _pair(stride), _pair(padding), _pair(output_padding), _pair(dilation)
    N, C, H, W = x.shape
    _, Og, KH, KW = w.shape
    Ho = (H - 1) * sh - 2 * ph + dh * (KH - 1) + oh + 1
    Wo = (W - 1) * sw - 2 * pw + dw * (KW - 1) + ow + 1
    full = np.zeros((N, Og * groups, Ho + 2 * ph, Wo + 2 * pw))
    Cg = C // groups
    for n, c, i, j in itertools.product(range(N), range(C), range(H), range(W)):
        g = c // Cg
        for o, u, v in itertools.product(range(Og), range(KH), range(KW)):
            full[n, g * Og + o, i * sh + u * dh, j * sw + v * dw] += x[n, c, i, j] * w[c, o, u, v]
    y = full[:, :, ph:ph + Ho, pw:pw + Wo]
    return y if b is None else y + b[None, :, None, None]


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1):
    (kh, kw), (ph, pw), (dh, dw) = _pair(kernel_size), _pair(padding), _pair(dilation)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.empty((N, C, Ho, Wo))
    for n, c, i, j in itertools.product(range(N), range(C), range(Ho), range(Wo)):
        y[n, c, i, j] = max(xp[n, c, i * sh + u * dh, j * sw + v * dw] for u in range(kh) for v in range(kw))
    return y


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    N, C, H, W = x.shape
    Ho = (H + 2 * ph - kh) // sh + 1
    Wo = (W + 2 * pw - kw) // sw + 1
    y = np.empty((N, C, Ho, Wo))
    for n, c, i, j in itertools.product(range(N), range(C), range(Ho), range(Wo)):
        cells = [(i * sh + u - ph, j * sw + v - pw) for u in range(kh) for v in range(kw)]
        inside = [x[n, c, r, s] for r, s in cells if 0 <= r < H and 0 <= s < W]
        y[n, c, i, j] = sum(inside) / (kh * kw if count_include_pad else len(inside))
    return y


def adaptive_avg_pool2d(x, output_size):
    Ho, Wo = _pair(output_size)
    N, C, H, W = x.shape
    y = np.empty((N, C, Ho, Wo))
    for i, j in itertools.product(range(Ho), range(Wo)):
        r0, r1 = (i * H) // Ho, -((-(i + 1) * H) // Ho)
        c0, c1 = (j * W) // Wo, -((-(j + 1) * W) // Wo)
        y[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return y


# ---- norms, embedding, recurrent steps ------------------------------------------------------------------------
def layer_norm(x, n_axes, weight=None, bias=None, eps=1e-5):
    """(x − μ)/√(σ² + eps) over the trailing ``n_axes`` axes (σ² the biased variance), then ·weight + bias."""
    axes = tuple(range(x.ndim - n_axes, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    return y * (1 if weight is None else weight) + (0 if bias is None else bias)


def batch_norm_train(x, running_mean, running_var, weight=None, bias=None, momentum=0.1, eps=1e-5):
    """Training mode: per channel (axis 1) over every other axis; running stats move by ``momentum`` towards
    the batch mean and the unbiased batch variance. Returns (y, new running mean, new running var)."""
    C = x.shape[1]
    y = np.empty_like(x)
    rm, rv = running_mean.copy(), running_var.copy()
    for c in range(C):
        vals = x[:, c]
        n = vals.size
        mu = vals.sum() / n
        var = ((vals - mu) ** 2).sum() / n
        y[:, c] = (vals - mu) / math.sqrt(var + eps) * (1 if weight is None else weight[c]) + (
            0 if bias is None else bias[c])
        rm[c] = (1 - momentum) * rm[c] + momentum * mu
        rv[c] = (1 - momentum) * rv[c] + momentum * var * n / (n - 1)
    return y, rm, rv


def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - running_mean.reshape(shape)) / np.sqrt(running_var.reshape(shape) + eps)
    return y * (1 if weight is None else weight.reshape(shape)) + (0 if bias is None else bias.reshape(shape))


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    N, C = x.shape[:2]
    y = np.empty_like(x)
    per = C // num_groups
    for n, g in itertools.product(range(N), range(num_groups)):
        vals = x[n, g * per:(g + 1) * per]
        mu = vals.mean()
        y[n, g * per:(g + 1) * per] = (vals - mu) / math.sqrt(((vals - mu) ** 2).mean() + eps)
    shape = (1, C) + (1,) * (x.ndim - 2)
    return y * (1 if weight is None else weight.reshape(shape)) + (0 if bias is None else bias.reshape(shape))


def embedding(weight, idx):
    out = np.empty(np.shape(idx) + weight.shape[1:])
    for pos in np.ndindex(*np.shape(idx)):
        out[pos] = weight[idx[pos]]
    return out


def gru_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    """PyTorch's GRUCell: r = σ(W_ir x + b_ir + W_hr h + b_hr), z likewise, n = tanh(W_in x + b_in + r ⊙ (W_hn h
    + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h; rows of W in the order r, z, n."""
    H = h.shape[-1]
    gx, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    r = sigmoid(gx[:, :H] + gh[:, :H])
    z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h


def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """PyTorch's LSTMCell: gates i, f, g, o (rows in that order); c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c')."""
    H = h.shape[-1]
    a = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
    c2 = f * c + i * g
    return o * np.tanh(c2), c2


# ---- CRF ------------------------------------------------------------------------------------------------------
def crf_path_score(h, tags, g, length, start=None, end=None):
    """score(y) = start[y_0] + Σ_{t<L} h[t, y_t] + Σ_{0<t<L} g[y_{t−1}, y_t] + end[y_{L−1}] (one sequence)."""
    s = sum(h[t, tags[t]] for t in range(length)) + sum(g[tags[t - 1], tags[t]] for t in range(1, length))
    if start is not None:
        s += start[tags[0]] + end[tags[length - 1]]
    return s


def crf_enumerate(h, g, length, start=None, end=None):
    """(log Z, best path, best score) of one sequence by enumerating all K^L paths."""
    K = h.shape[1]
    paths = list(itertools.product(range(K), repeat=length))
    scores = np.array([crf_path_score(h, p, g, length, start, end) for p in paths])
    best = int(np.argmax(scores))
    return _lse(scores), list(paths[best]), scores[best]


# ---- capsules -------------------------------------------------------------------------------------------------
def squash(x, c=1.0):
    """‖x‖²/(c + ‖x‖²) · x/‖x‖ along the last axis."""
    n = np.sqrt((x * x).sum(axis=-1, keepdims=True))
    return n * n / (c + n * n) * x / n


def dynamic_routing(u_hat, iterations=3, variant="sabour", c=1.0):
    """Routing by agreement over û (B, I, J, D): c_ij = softmax_j(b_ij), s_j = Σ_i c_ij û_ij; the last
    iteration returns squash(s). Between iterations v_j = squash(s_j) (Sabour, Su) or s_j/‖s_j‖ (k-means), and
    b_ij ← b_ij + ⟨û_ij, v_j⟩ (Sabour) or b_ij ← ⟨û_ij, v_j⟩ (Su, k-means)."""
    B, I, J, D = u_hat.shape
    out = np.empty((B, J, D))
    for n in range(B):
        b = np.zeros((I, J))
        for t in range(iterations):
            cc = np.array([_softmax(b[i]) for i in range(I)])
            s = np.array([sum(cc[i, j] * u_hat[n, i, j] for i in range(I)) for j in range(J)])
            if t == iterations - 1:
                out[n] = squash(s, c)
                break
            v = s / np.linalg.norm(s, axis=-1, keepdims=True) if variant == "kmeans" else squash(s, c)
            a = np.array([[u_hat[n, i, j] @ v[j] for j in range(J)] for i in range(I)])
            b = b + a if variant == "sabour" else a
    return out


# ---- margin losses --------------------------------------------------------------------------------------------
def _cosines(x, w):
    xh = x / np.linalg.norm(x, axis=1, keepdims=True)
    wh = w / np.linalg.norm(w, axis=1, keepdims=True)
    return xh @ wh.T


def margin_softmax(x, w, labels, s, psi):
    """Per sample: logsumexp_j z_j − z_y with z_j = s·cos θ_j and the target logit s·ψ(cos θ_y)."""
    cos = _cosines(x, w)
    out = np.empty(len(x))
    for i, y in enumerate(labels):
        z = s * cos[i].copy()
        z[y] = s * psi(cos[i, y])
        out[i] = _lse(z) - z[y]
    return out


def psi_am(m):
    return lambda c: c - m


def psi_a(m):
    return lambda c: min(math.cos(m * math.acos(c)), c)


def psi_arcface(m):
    return lambda c: math.cos(math.acos(c) + m) if math.acos(c) < math.pi - m else c - (1 - math.cos(m))


def triplet(a, p, n, margin=1.0):
    return np.maximum(0, np.linalg.norm(a - p, axis=1) - np.linalg.norm(a - n, axis=1) + margin)


def contrastive(x1, x2, same, margin=1.0):
    d = np.linalg.norm(x1 - x2, axis=1)
    return np.where(same, 0.5 * d * d, 0.5 * np.maximum(0, margin - d) ** 2)


# ---- VAE ------------------------------------------------------------------------------------------------------
def gaussian_kl(mu, logvar):
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_d (μ² + σ² − 1 − log σ²)."""
    return 0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar).sum(axis=-1)


def reparameterize(mu, logvar, eps):
    return mu + np.exp(0.5 * logvar) * eps


def cluster_kl(z, logvar, means, logits):
    """Σ_k p_k(½‖z − μ_k‖² + log p_k) − ½ Σ_d logvar_d − D/2 + log K per sample, p = softmax(logits)."""
    K, D = means.shape
    out = np.empty(len(z))
    for i in range(len(z)):
        p = _softmax(logits[i])
        out[i] = sum(p[k] * (0.5 * ((z[i] - means[k]) ** 2).sum() + math.log(p[k])) for k in range(K))
        out[i] += -0.5 * logvar[i].sum() - D / 2 + math.log(K)
    return out


# ---- GANs -----------------------------------------------------------------------------------------------------
def discriminator_loss(real, fake, kind):
    """The discriminator's loss, each term a mean over its scores."""
    if kind in ("minimax", "non_saturating"):
        return -np.log(sigmoid(real)).mean() - np.log(1 - sigmoid(fake)).mean()
    if kind == "hinge":
        return np.maximum(0, 1 - real).mean() + np.maximum(0, 1 + fake).mean()
    if kind == "least_squares":
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()
    if kind == "wasserstein":
        return -real.mean() + fake.mean()
    raise ValueError(kind)


def generator_loss(fake, kind):
    if kind == "minimax":
        return np.log(1 - sigmoid(fake)).mean()
    if kind == "non_saturating":
        return -np.log(sigmoid(fake)).mean()
    if kind in ("hinge", "wasserstein"):
        return -fake.mean()
    if kind == "least_squares":
        return 0.5 * ((fake - 1) ** 2).mean()
    raise ValueError(kind)


def cascading_rejection(v, weights):
    """score_k = ⟨r_k, w_k⟩ with r_1 = v and r_{k+1} = r_k − ⟨r_k, w_k⟩/‖w_k‖² · w_k, per row of v."""
    out = np.empty((len(v), len(weights)))
    for b in range(len(v)):
        r = v[b].copy()
        for k, w in enumerate(weights):
            out[b, k] = r @ w
            r = r - (r @ w) / (w @ w) * w
    return out
