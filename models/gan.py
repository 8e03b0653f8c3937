"""GANs: adversarial losses, gradient penalties by double backprop, and cascading rejection.

* ``discriminator_loss`` / ``generator_loss``: five losses on raw scores (logits), each one Function
  (``AdversarialLoss``) built from terms φ(s) = c·h(a·s + b), with h ∈ {softplus, relu, linear, ½·square}.
* ``r1_penalty``, ``r2_penalty``, ``wgan_gp_penalty``, ``zero_centered_gp``: penalties on ∇ₓD(x), computed with
  ``mg.grad(..., create_graph=True)`` so that their gradient w.r.t. D's parameters is a second derivative.
* ``cascading_rejection``: K scores ⟨v_i, w_i⟩ where v_i is what w_1..w_{i−1} left of v (one Function).

Derivations: docs/derivations/gan.md. Tests: tests/models/test_gan.py.
"""
import math
from collections import namedtuple

from minigrad import backend, nn
from minigrad.backend import get_array_module
from minigrad.core import Function, Tensor, as_tensor, enable_grad, grad, no_grad, on_inputs_device
from minigrad.creation import randn, zeros
from minigrad.ops import relu, softplus, sqrt, stack, unsqueeze, sum as _sum



# ---- adversarial losses ---------------------------------------------------------------------------------------
Term = namedtuple("Term", "h a b c")  # φ(s) = c·h(a·s + b)

_H = {  # name: (h on arrays, h' on Tensors: written with minigrad ops, so the loss has every derivative)
    "softplus": (lambda xp, u: xp.maximum(u, 0) + xp.log1p(xp.exp(-xp.abs(u))), lambda u: u.sigmoid()),
    "relu": (lambda xp, u: xp.maximum(u, 0), lambda u: Tensor((u.data > 0).astype(u.dtype))),
    "linear": (lambda xp, u: u, lambda u: Tensor(u.xp.ones_like(u.data))),
    "square": (lambda xp, u: 0.5 * u * u, lambda u: u),
}

LOSSES = {  # kind: (D's term on real scores, D's term on fake scores, G's term on fake scores)
    "minimax": (Term("softplus", -1, 0, 1), Term("softplus", 1, 0, 1), Term("softplus", 1, 0, -1)),
    "non_saturating": (Term("softplus", -1, 0, 1), Term("softplus", 1, 0, 1), Term("softplus", -1, 0, 1)),
    "hinge": (Term("relu", -1, 1, 1), Term("relu", 1, 1, 1), Term("linear", -1, 0, 1)),
    "least_squares": (Term("square", 1, -1, 1), Term("square", 1, 0, 1), Term("square", 1, -1, 1)),
    "wasserstein": (Term("linear", -1, 0, 1), Term("linear", 1, 0, 1), Term("linear", -1, 0, 1)),
}


class AdversarialLoss(Function):
    """L = Σ_k mean φ_k(s_k) for score tensors s_k, with φ(s) = c·h(a·s + b);  ∂s_k = g·c·a·h'(a·s_k + b)/|s_k|.

    softplus is evaluated as max(u, 0) + log1p(e^{−|u|}) and its derivative is σ(u): finite for any logit."""

    def __init__(self, terms):
        self.terms = terms

    def forward(self, *scores):
        self.save_for_backward(*scores)
        xp = get_array_module(scores[0])
        total = 0.0
        for (h, a, b, c), s in zip(self.terms, scores):
            total = total + c * _H[h][0](xp, a * s + b).mean()
        return xp.asarray(total, dtype=scores[0].dtype)

    def backward(self, g):
        grads = []
        for (h, a, b, c), s, need in zip(self.terms, self.saved_tensors, self.needs_input_grad):
            grads.append(g * _H[h][1](s * a + b) * (c * a / s.size) if need else None)
        return tuple(grads)

    def jvp(self, *tangents):
        raise NotImplementedError("AdversarialLoss is a fused op without a forward-mode rule (jvp): "
                                  "use discriminator_loss_composed / generator_loss_composed for forward mode")


def _loss_terms(kind, fn):
    if kind not in LOSSES:
        raise ValueError(f"{fn}: kind must be one of {', '.join(LOSSES)}; got {kind!r}")
    return LOSSES[kind]


def _check_scores(fn, **scores):
    ts = {k: as_tensor(v) for k, v in scores.items()}
    for k, t in ts.items():
        if t.dtype.kind != "f" or t.size == 0:
            raise ValueError(f"{fn}: {k} must be a non-empty floating tensor, got {t.dtype} of shape {t.shape}")
    dtypes = {t.dtype for t in ts.values()}
    if len(dtypes) > 1:
        listed = ", ".join(f"{k}: {t.dtype}" for k, t in ts.items())
        raise TypeError(f"{fn}: the scores have different dtypes ({listed})")
    return list(ts.values())


def discriminator_loss(real_scores, fake_scores, kind="non_saturating"):
    """The discriminator's loss on its raw scores (logits for the first two kinds), each term averaged over all
    its elements:  minimax / non_saturating: softplus(−r) + softplus(f) (= BCE with labels 1 and 0);
    hinge: relu(1 − r) + relu(1 + f);  least_squares: ½(r − 1)² + ½f²;  wasserstein: −r + f."""
    real, fake = _check_scores("discriminator_loss", real_scores=real_scores, fake_scores=fake_scores)
    tr, tf, _ = _loss_terms(kind, "discriminator_loss")
    return AdversarialLoss((tr, tf))(real, fake)


def generator_loss(fake_scores, kind="non_saturating"):
    """The generator's loss on D's scores of fakes (mean over all elements):  minimax: −softplus(f)
    (= log(1 − σ(f)), which saturates when D wins);  non_saturating: softplus(−f) (= −log σ(f));
    hinge and wasserstein: −f;  least_squares: ½(f − 1)²."""
    (fake,) = _check_scores("generator_loss", fake_scores=fake_scores)
    return AdversarialLoss((_loss_terms(kind, "generator_loss")[2],))(fake)


def discriminator_loss_composed(real, fake, kind="non_saturating"):
    """Reference: the same losses from primitive ops."""
    if kind in ("minimax", "non_saturating"):
        return softplus(-real).mean() + softplus(fake).mean()
    if kind == "hinge":
        return relu(1 - real).mean() + relu(1 + fake).mean()
    if kind == "least_squares":
        return ((real - 1) * (real - 1)).mean() * 0.5 + (fake * fake).mean() * 0.5
    if kind == "wasserstein":
        return fake.mean() - real.mean()
    raise ValueError(f"unknown kind {kind!r}")


def generator_loss_composed(fake, kind="non_saturating"):
    """Reference: the same losses from primitive ops."""
    if kind == "minimax":
        return -softplus(fake).mean()
    if kind == "non_saturating":
        return softplus(-fake).mean()
    if kind in ("hinge", "wasserstein"):
        return -fake.mean()
    if kind == "least_squares":
        return ((fake - 1) * (fake - 1)).mean() * 0.5
    raise ValueError(f"unknown kind {kind!r}")


# ---- gradient penalties (second derivatives through the engine) -----------------------------------------------
def input_gradient(discriminator, x):
    """∇ₓ Σ D(x), with the graph kept (create_graph) so that anything computed from it can be differentiated
    w.r.t. D's parameters. Each sample's score depends on its own input only (no batch statistics in D), so row
    n is ∇D(x_n); with several scores per sample (K heads) it is the gradient of their sum."""
    x = Tensor(as_tensor(x).data, requires_grad=True)  # a fresh leaf: penalties never reach the generator
    with enable_grad():
        scores = discriminator(x)
        if not isinstance(scores, Tensor) or scores.shape[:1] != x.shape[:1]:
            raise ValueError(f"input_gradient: the discriminator must map a batch {x.shape} to scores with the same "
                             f"first dimension, got {getattr(scores, 'shape', type(scores).__name__)}")
        (g,) = grad(scores.sum(), x, create_graph=True)
    return g


def _squared_norms(g):
    """‖g_n‖² per sample, (N,)."""
    return (g * g).reshape(g.shape[0], -1).sum(axis=1)


def r1_penalty(discriminator, real):
    """R1: the batch mean of ‖∇ₓD(x)‖² on real data (the caller multiplies by γ/2)."""
    return _squared_norms(input_gradient(discriminator, real)).mean()


def r2_penalty(discriminator, fake):
    """R2: the batch mean of ‖∇ₓD(x)‖² on generated data (detached from the generator)."""
    return _squared_norms(input_gradient(discriminator, fake)).mean()


@on_inputs_device
def interpolate(real, fake, alpha=None):
    """x̂ = α·real + (1 − α)·fake with one α ~ U(0, 1) per sample (drawn from the seeded generator when None)."""
    real, fake = as_tensor(real), as_tensor(fake)
    if real.shape != fake.shape or real.dtype != fake.dtype:
        raise ValueError(f"interpolate: real {real.shape} {real.dtype} and fake {fake.shape} {fake.dtype} must "
                         "have the same shape and dtype")
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    if alpha is None:
        alpha = backend.generator(real.device).random(shape, dtype=real.dtype)
    else:
        alpha = as_tensor(alpha, real).data.astype(real.dtype)
        if alpha.size not in (1, real.shape[0]):
            raise ValueError(f"interpolate: alpha needs 1 or {real.shape[0]} values (one per sample), got shape "
                             f"{alpha.shape}")
        alpha = alpha.reshape(shape) if alpha.size > 1 else alpha.reshape(())
    return Tensor(fake.data + alpha * (real.data - fake.data))


def wgan_gp_penalty(discriminator, real, fake, alpha=None, center=1.0, eps=1e-12):
    """The batch mean of (‖∇ₓD(x̂)‖ − center)² at interpolates x̂ = α·real + (1 − α)·fake. ``center=1`` is WGAN-GP;
    ``center=0`` is the zero-centred penalty, computed as the mean of ‖∇D‖² (no square root). The norm is
    √(‖∇D‖² + eps) so that its gradient stays finite where ∇D = 0."""
    g = input_gradient(discriminator, interpolate(real, fake, alpha))
    sq = _squared_norms(g)
    if center == 0:
        return sq.mean()
    d = sqrt(sq + eps) - float(center)
    return (d * d).mean()


def zero_centered_gp(discriminator, real, fake, alpha=None):
    """The zero-centred penalty on interpolates: the batch mean of ‖∇ₓD(x̂)‖²."""
    return wgan_gp_penalty(discriminator, real, fake, alpha, center=0.0)


# ---- cascading rejection --------------------------------------------------------------------------------------
class CascadingRejection(Function):
    """s_i = ⟨v_i, w_i⟩ with v_1 = v and v_{i+1} = v_i − (s_i/‖w_i‖²)·w_i = P_i v_i  (P_i projects out w_i).

    Backward, from a_{K+1} = 0 down to i = 1 (derivation in docs/derivations/gan.md):
        σ_i = g_i − ⟨a_{i+1}, w_i⟩/n_i,   a_i = a_{i+1} + σ_i·w_i  (= P_i a_{i+1} + g_i·w_i),
        ∂w_i = Σ_batch [σ_i·v_i − (s_i/n_i)·a_{i+1} + (2 s_i ⟨a_{i+1}, w_i⟩/n_i²)·w_i],  and ∂v = a_1.
    The backward rebuilds the residuals v_i from the inputs with minigrad ops, so it is itself differentiable
    (a gradient penalty on a discriminator with this head needs that)."""

    def forward(self, v, w):
        self.save_for_backward(v, w)
        xp = get_array_module(v)
        n = (w * w).sum(axis=1)
        scores = xp.empty((v.shape[0], w.shape[0]), dtype=v.dtype)
        r = v
        for i in range(w.shape[0]):
            s = r @ w[i]
            scores[:, i] = s
            r = r - (s / n[i])[:, None] * w[i]
        return scores

    def backward(self, gs):
        v, w = self.saved_tensors
        K = w.shape[0]
        n = _sum(w * w, axis=1)
        rs, ss = [v], [v @ w[0]]
        for i in range(1, K):
            rs.append(rs[-1] - unsqueeze(ss[-1] / n[i - 1], 1) * w[i - 1])
            ss.append(rs[-1] @ w[i])
        a, gw = None, [None] * K  # a: the adjoint of v_{i+1}; None stands for zero
        for i in reversed(range(K)):
            wi, ni, si, ri = w[i], n[i], ss[i], rs[i]
            if a is None:
                sigma = gs[:, i]
                gw[i] = sigma @ ri
            else:
                aw = a @ wi
                sigma = gs[:, i] - aw / ni
                gw[i] = sigma @ ri - (si @ a) / ni + wi * ((si * aw).sum() * 2 / (ni * ni))
            a = unsqueeze(sigma, 1) * wi if a is None else a + unsqueeze(sigma, 1) * wi
        return a, stack(gw)

    def jvp(self, *tangents):
        raise NotImplementedError("CascadingRejection is a fused op without a forward-mode rule (jvp): "
                                  "use cascading_rejection_composed for forward mode")


def cascading_rejection(v, weights):
    """Scores (B, K) of features v (B, d) by weights (K, d): score i is ⟨v_i, w_i⟩ where v_i is the part of v
    orthogonal to w_1..w_{i−1}, removed one at a time (v_{i+1} = v_i − ⟨v_i, w_i⟩/‖w_i‖²·w_i). Score 1 is the
    plain linear score ⟨v, w_1⟩; each further score judges only what the earlier ones could not see."""
    v, weights = as_tensor(v), as_tensor(weights)
    if v.ndim != 2 or weights.ndim != 2 or v.shape[1] != weights.shape[1]:
        raise ValueError(f"cascading_rejection: expected v (B, d) and weights (K, d) with the same d; got v {v.shape}, "
                         f"weights {weights.shape}")
    if v.dtype != weights.dtype:
        raise TypeError(f"cascading_rejection: v is {v.dtype} but weights is {weights.dtype}")
    return CascadingRejection()(v, weights)


def cascading_rejection_composed(v, weights, return_residuals=False):
    """Reference from primitive ops; with ``return_residuals`` also the list [v_1, …, v_{K+1}]."""
    rs, scores = [v], []
    for i in range(weights.shape[0]):
        w = weights[i]
        s = rs[-1] @ w
        scores.append(s)
        rs.append(rs[-1] - unsqueeze(s / (w * w).sum(), 1) * w)
    out = stack(scores, axis=1)
    return (out, rs) if return_residuals else out


class CascadingRejectionHead(nn.Module):
    """K scores of a feature vector, each on what the previous weights left: ``cascading_rejection(v, W) + b``.
    With K = 1 it is ``Linear(in_features, 1)``. weight (K, d) starts like Linear's."""

    def __init__(self, in_features, num_scores, bias=True):
        super().__init__()
        self.in_features, self.num_scores = in_features, num_scores
        self.weight = nn.Parameter(zeros(num_scores, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.register_parameter("bias", nn.Parameter(zeros(num_scores)) if bias else None)

    def forward(self, v):
        s = cascading_rejection(v, self.weight)
        return s if self.bias is None else s + self.bias

    def extra_repr(self):
        return f"in_features={self.in_features}, num_scores={self.num_scores}, bias={self.bias is not None}"


# ---- models ---------------------------------------------------------------------------------------------------
class MLPGenerator(nn.Module):
    """z (N, latent_dim) → x (N, out_features): ``depth`` hidden layers of ``hidden`` ReLU units."""

    def __init__(self, latent_dim=2, out_features=2, hidden=128, depth=3):
        super().__init__()
        layers, d = [], latent_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        self.net = nn.Sequential(*layers, nn.Linear(d, out_features))
        self.latent_dim = latent_dim

    def forward(self, z):
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """x (N, in_features) → scores (N, K): ``depth`` hidden LeakyReLU(0.2) layers, then a linear score (K = 1) or a
    ``CascadingRejectionHead`` with K = ``num_scores`` > 1."""

    def __init__(self, in_features=2, hidden=128, depth=3, num_scores=1):
        super().__init__()
        layers, d = [], in_features
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.LeakyReLU(0.2)]
            d = hidden
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(d, 1) if num_scores == 1 else CascadingRejectionHead(d, num_scores)

    def forward(self, x):
        return self.head(self.features(x))


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) → images (N, C, S, S) in (−1, 1), S = ``image_size`` (divisible by 4): linear to
    2c·S/4·S/4, then two stride-2 4×4 transposed convolutions (S/4 → S/2 → S) with BatchNorm and ReLU, tanh at
    the end (train on images scaled to [−1, 1])."""

    def __init__(self, latent_dim=64, channels=64, out_channels=1, image_size=28):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"DCGANGenerator: image_size must be divisible by 4, got {image_size}")
        c, b = channels, image_size // 4
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 2 * c * b * b), nn.Unflatten(1, (2 * c, b, b)), nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.ConvTranspose2d(c, out_channels, 4, stride=2, padding=1), nn.Tanh())
        self.latent_dim = latent_dim

    def forward(self, z):
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """images (N, C, S, S) → scores (N, K): two stride-2 4×4 convolutions with LeakyReLU(0.2), then a linear or
    cascading head. ``batch_norm=True`` puts BatchNorm after the second convolution, as the DCGAN recipe does (it
    trains faster); leave it off for gradient penalties, which need each sample's score to depend on that sample
    alone."""

    def __init__(self, channels=64, in_channels=1, num_scores=1, image_size=28, batch_norm=False):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"DCGANDiscriminator: image_size must be divisible by 4, got {image_size}")
        c, b = channels, image_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), *([nn.BatchNorm2d(2 * c)] if batch_norm else []),
            nn.LeakyReLU(0.2), nn.Flatten())
        d = 2 * c * b * b
        self.head = nn.Linear(d, 1) if num_scores == 1 else CascadingRejectionHead(d, num_scores)

    def forward(self, x):
        return self.head(self.features(x))


def dcgan_init_(module, std=0.02):
    """The DCGAN paper's initialisation, in place: convolution and linear weights ~ N(0, std²), BatchNorm scales
    ~ N(1, std²), every bias 0. Returns ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, std)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return module


# ---- one training step -----------------------------------------------------------------------------------------
def train_step(generator, discriminator, opt_g, opt_d, real, kind="non_saturating", r1_gamma=0.0, gp_weight=0.0,
               gp_center=1.0, ema=None):
    """One discriminator step, then one generator step, on fresh latents; returns the losses as floats.

    D minimises ``discriminator_loss`` + γ/2·R1 (``r1_gamma``) + λ·(‖∇D(x̂)‖ − c)² (``gp_weight``, ``gp_center``);
    G minimises ``generator_loss``; ``ema`` (an ``optim.EMA`` of the generator) is updated after G's step."""
    n, device = real.shape[0], real.device
    with no_grad():
        fake = generator(randn(n, generator.latent_dim, device=device, dtype=real.dtype))
    loss_d = discriminator_loss(discriminator(real), discriminator(fake), kind)
    out = {"loss_d": loss_d.item()}
    if r1_gamma:
        r1 = r1_penalty(discriminator, real)
        loss_d = loss_d + r1 * (0.5 * r1_gamma)
        out["r1"] = r1.item()
    if gp_weight:
        gp = wgan_gp_penalty(discriminator, real, fake, center=gp_center)
        loss_d = loss_d + gp * float(gp_weight)
        out["gp"] = gp.item()
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    fake = generator(randn(n, generator.latent_dim, device=device, dtype=real.dtype))
    d_params = list(discriminator.parameters())
    flags = [p.requires_grad for p in d_params]
    discriminator.requires_grad_(False)  # G's step needs no gradient for D's weights
    try:
        loss_g = generator_loss(discriminator(fake), kind)
        opt_g.zero_grad()
        loss_g.backward()
    finally:
        for p, flag in zip(d_params, flags):
            p.requires_grad = flag
    opt_g.step()
    if ema is not None:
        ema.update()
    out["loss_g"] = loss_g.item()
    return out
