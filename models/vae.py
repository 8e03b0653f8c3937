"""Variational autoencoders: the reparameterisation trick, the Gaussian KL, and one-step clustering.

Conventions: an encoder gives the mean ``mu`` and the *log-variance* ``logvar`` = log σ² of a diagonal Gaussian;
``reparameterize`` and both KL functions use that same convention. Derivations: docs/derivations/vae.md.

``ClusterVAE`` puts a class variable y in the latent space: q(z|y) = N(μ_y, I), q(y) uniform, and a classifier
p(y|z). Minimising  λ·reconstruction + KL(p(z, y|x) ‖ q(z, y))  clusters the data while it trains.
"""
import math

from minigrad import backend, nn
from minigrad.backend import get_array_module
from minigrad.core import Function, Tensor, as_tensor, no_grad
from minigrad.creation import randn, zeros
from minigrad.ops import array_math
from minigrad.ops import (binary_cross_entropy_with_logits, exp, log_softmax, sigmoid, softmax, sum as _sum,
                          unsqueeze)



def _check_same(name, a, b, names):
    if a.shape != b.shape:
        raise ValueError(f"{name}: {names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; "
                         "they must match (nothing is broadcast)")
    if a.dtype != b.dtype:
        raise TypeError(f"{name}: {names[0]} is {a.dtype} but {names[1]} is {b.dtype}")


# ---- reparameterisation --------------------------------------------------------------------------------------
class Reparameterize(Function):
    """z = μ + exp(½·logvar) ⊙ ε;  ∂μ = gz,  ∂logvar = ½·gz ⊙ σ ⊙ ε,  ∂ε = gz ⊙ σ  (σ = exp(½·logvar)).

    The backward is written with minigrad ops, so it has derivatives of every order."""

    def forward(self, mu, logvar, eps):
        _, need_logvar, need_eps = self.needs_input_grad
        self.save_for_backward(logvar if need_logvar or need_eps else None, eps if need_logvar else None)
        return mu + get_array_module(mu).exp(0.5 * logvar) * eps

    def backward(self, gz):
        logvar, eps = self.saved_tensors
        need_mu, need_logvar, need_eps = self.needs_input_grad
        std = exp(logvar * 0.5) if need_logvar or need_eps else None
        return (gz if need_mu else None, gz * eps * std * 0.5 if need_logvar else None,
                gz * std if need_eps else None)

    def jvp(self, *tangents):
        raise NotImplementedError("Reparameterize is a fused op without a forward-mode rule (jvp): "
                                  "use reparameterize_composed for forward mode")


def reparameterize(mu, logvar, eps=None):
    """A differentiable sample z ~ N(μ, diag exp(logvar)); ``eps`` ~ N(0, I) is drawn from the seeded
    generator of μ's device when not given (pass it to make a sample repeatable)."""
    mu, logvar = as_tensor(mu), as_tensor(logvar)
    _check_same("reparameterize", mu, logvar, ("mu", "logvar"))
    if eps is None:
        eps = Tensor(backend.generator(mu.device).standard_normal(mu.shape, dtype=mu.dtype))
    eps = as_tensor(eps, mu)
    _check_same("reparameterize", mu, eps, ("mu", "eps"))
    return Reparameterize()(mu, logvar, eps)


def reparameterize_composed(mu, logvar, eps):
    """Reference: the same sample from primitive ops."""
    return mu + exp(logvar * 0.5) * eps


# ---- KL(N(μ, σ²) ‖ N(0, I)) ----------------------------------------------------------------------------------
class GaussianKL(Function):
    """KL = ½ Σ_d (μ² + e^{logvar} − 1 − logvar) over the last axis;  ∂μ = g·μ,  ∂logvar = ½·g·(e^{logvar} − 1).

    The backward is written with minigrad ops (derivatives of every order)."""

    def forward(self, mu, logvar):
        need_mu, need_logvar = self.needs_input_grad
        self.save_for_backward(mu if need_mu else None, logvar if need_logvar else None)
        return 0.5 * (mu * mu + get_array_module(mu).exp(logvar) - 1 - logvar).sum(axis=-1)

    def backward(self, gy):
        mu, logvar = self.saved_tensors
        g = unsqueeze(gy, -1)
        return g * mu if mu is not None else None, g * (exp(logvar) - 1) * 0.5 if logvar is not None else None

    def jvp(self, *tangents):
        raise NotImplementedError("GaussianKL is a fused op without a forward-mode rule (jvp): "
                                  "use gaussian_kl_composed for forward mode")


def gaussian_kl(mu, logvar):
    """KL(N(μ, diag e^{logvar}) ‖ N(0, I)) per sample: inputs ``(..., D)``, output ``(...)`` (sum over D)."""
    mu, logvar = as_tensor(mu), as_tensor(logvar)
    _check_same("gaussian_kl", mu, logvar, ("mu", "logvar"))
    if mu.ndim < 1:
        raise ValueError("gaussian_kl: mu and logvar need a latent axis (shape (..., D)), got a scalar")
    return GaussianKL()(mu, logvar)


def gaussian_kl_composed(mu, logvar):
    """Reference: the closed form from primitive ops."""
    return _sum(mu * mu + exp(logvar) - 1 - logvar, axis=-1) * 0.5


def gaussian_log_prob(x, mu, logvar):
    """log N(x; μ, diag e^{logvar}) summed over the last axis (composed; for Monte-Carlo estimates)."""
    d = x - mu
    return _sum(d * d * exp(-logvar) + logvar, axis=-1) * -0.5 - (0.5 * math.log(2 * math.pi)) * x.shape[-1]


# ---- the clustering KL -----------------------------------------------------------------------------------------
class ClusterKL(Function):
    """Per sample i, with p = softmax(logits), a_k = ½‖z − μ_k‖², f_k = a_k + log p_k:

        L = Σ_k p_k f_k − ½ Σ_d logvar_d − D/2 + log K
        ∂z = g·(z − Σ_k p_k μ_k),  ∂μ_k = −Σ_i g_i p_ik (z_i − μ_k),  ∂logvar = −½·g,
        ∂logits_k = g·p_k·(f_k − Σ_j p_j f_j).

    Fused: the backward works on arrays (use ``cluster_kl_terms_composed`` for second derivatives)."""

    differentiable_backward = False

    def forward(self, z, logvar, means, logits):
        xp = get_array_module(z)
        K, D = means.shape
        logp = array_math.log_softmax(logits, -1)
        p = xp.exp(logp)
        d = z[:, None, :] - means[None, :, :]
        f = 0.5 * (d * d).sum(axis=-1) + logp
        ef = (p * f).sum(axis=-1)
        self.save_for_backward(z, means, p, f, ef)
        self.logvar_shape = logvar.shape
        return ef - 0.5 * logvar.sum(axis=-1) + (math.log(K) - 0.5 * D)

    def backward(self, gy):
        z, means, p, f, ef = (t.data for t in self.saved_tensors)
        g = gy.data[:, None]
        gp = g * p
        g_z = g * z - gp @ means
        g_means = gp.sum(axis=0)[:, None] * means - gp.T @ z
        g_logvar = get_array_module(z).broadcast_to(-0.5 * g, self.logvar_shape).copy()
        g_logits = gp * (f - ef[:, None])
        return Tensor(g_z), Tensor(g_logvar), Tensor(g_means), Tensor(g_logits)

    def jvp(self, *tangents):
        raise NotImplementedError("ClusterKL is a fused op without a forward-mode rule (jvp): "
                                  "use cluster_kl_terms_composed for forward mode")


def cluster_kl_terms(z, logvar, class_means, logits):
    """The KL part of the one-step clustering loss, per sample: z, logvar ``(N, D)``; class_means ``(K, D)``;
    logits ``(N, K)`` of the classifier p(y|z). With p = softmax(logits),

        L_i = Σ_k p_ik·½‖z_i − μ_k‖² − ½ Σ_d logvar_id − D/2  +  Σ_k p_ik log(K·p_ik).

    When z_i = μ_i + σ_i ⊙ ε_i (``reparameterize``), L_i is an unbiased one-sample estimate of
    KL(p(z, y|x_i) ‖ q(z, y)) with p(z, y|x) = N(z; μ, σ²)·p(y|z), q(z, y) = N(z; μ_y, I)/K: the first three terms
    are Σ_y p(y|z)·log[p(z|x)/q(z|y)] with ½‖ε‖² replaced by its mean D/2, the last is KL(p(y|z) ‖ uniform)."""
    z, logvar, class_means, logits = (as_tensor(t) for t in (z, logvar, class_means, logits))
    _check_same("cluster_kl_terms", z, logvar, ("z", "logvar"))
    if z.ndim != 2 or class_means.ndim != 2 or logits.ndim != 2:
        raise ValueError(f"cluster_kl_terms: expected z (N, D), class_means (K, D), logits (N, K); got z "
                         f"{z.shape}, class_means {class_means.shape}, logits {logits.shape}")
    (N, D), (K, Dm) = z.shape, class_means.shape
    if Dm != D or logits.shape != (N, K):
        raise ValueError(f"cluster_kl_terms: z {z.shape} and class_means {class_means.shape} need the same D, and "
                         f"logits must be (N, K) = {(N, K)}; got logits {logits.shape}")
    for name, t in (("class_means", class_means), ("logits", logits)):
        if t.dtype != z.dtype:
            raise TypeError(f"cluster_kl_terms: {name} is {t.dtype} but z is {z.dtype}")
    return ClusterKL()(z, logvar, class_means, logits)


def cluster_kl_terms_composed(z, logvar, class_means, logits):
    """Reference: the same loss from primitive ops (has second derivatives)."""
    K, D = class_means.shape
    d = unsqueeze(z, 1) - class_means
    logp = log_softmax(logits, axis=-1)
    f = _sum(d * d, axis=-1) * 0.5 + logp
    return _sum(softmax(logits, axis=-1) * f, axis=-1) - _sum(logvar, axis=-1) * 0.5 + (math.log(K) - 0.5 * D)


# ---- models ---------------------------------------------------------------------------------------------------
def _mlp_encoder(in_shape, hidden):
    n = math.prod(in_shape)
    return nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()), hidden


def _mlp_decoder(in_shape, latent_dim, hidden):
    n = math.prod(in_shape)
    return nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n), nn.Unflatten(1, in_shape))


def _conv_encoder(in_shape, channels):
    """Two stages of [3×3 conv stride 2, 3×3 conv stride 1] with LeakyReLU(0.2): H×W → H/4×W/4."""
    c, h, w = in_shape
    layers = []
    for f in channels:
        layers += [nn.Conv2d(c, f, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                   nn.Conv2d(f, f, 3, stride=1, padding=1), nn.LeakyReLU(0.2)]
        c = f
    return nn.Sequential(*layers, nn.Flatten()), c * (h // 4) * (w // 4)


def _conv_decoder(in_shape, latent_dim, channels):
    """The mirror image: a linear map to C×H/4×W/4, then [3×3 transposed conv stride 1, stride 2] twice."""
    c, h, w = in_shape
    f = channels[-1]
    layers = [nn.Linear(latent_dim, f * (h // 4) * (w // 4)), nn.Unflatten(1, (f, h // 4, w // 4))]
    for out in reversed(channels):
        layers += [nn.ConvTranspose2d(f, out, 3, stride=1, padding=1), nn.LeakyReLU(0.2),
                   nn.ConvTranspose2d(out, out, 3, stride=2, padding=1, output_padding=1), nn.LeakyReLU(0.2)]
        f = out
    return nn.Sequential(*layers, nn.ConvTranspose2d(f, c, 3, stride=1, padding=1))


def glorot_init_(module):
    """Keras' default initialisation, in place, as the seed's clustering script has it: every convolution,
    transposed convolution and linear weight ~ U(−a, a) with a = √(6 / (fan_in + fan_out)) (Glorot), biases 0.
    Its weights have about 3× the variance of the default (PyTorch's) uniform init. Returns ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class VAE(nn.Module):
    """A VAE with a diagonal-Gaussian encoder and prior N(0, I).

    ``arch="mlp"`` (two hidden layers of ``hidden`` units) or ``"conv"`` (two stride-2 stages of ``channels``;
    H and W divisible by 4). ``recon="bce"``: Bernoulli decoder, −log p(x|z) = BCE-with-logits summed over pixels;
    ``"mse"``: ½‖x − sigmoid(decoder(z))‖², a Gaussian decoder of variance 1/``recon_weight``."""

    def __init__(self, in_shape=(1, 28, 28), latent_dim=20, arch="mlp", hidden=256, channels=(32, 64),
                 recon="bce", recon_weight=1.0):
        super().__init__()
        in_shape = tuple(in_shape)
        if len(in_shape) != 3:
            raise ValueError(f"{type(self).__name__}: in_shape must be (C, H, W), got {in_shape}")
        if recon not in ("bce", "mse"):
            raise ValueError(f"{type(self).__name__}: recon must be 'bce' or 'mse', got {recon!r}")
        if arch == "mlp":
            self.encoder, feat = _mlp_encoder(in_shape, hidden)
            self.decoder = _mlp_decoder(in_shape, latent_dim, hidden)
        elif arch == "conv":
            if in_shape[1] % 4 or in_shape[2] % 4:
                raise ValueError(f"{type(self).__name__}: arch='conv' needs H and W divisible by 4, got {in_shape}")
            self.encoder, feat = _conv_encoder(in_shape, channels)
            self.decoder = _conv_decoder(in_shape, latent_dim, channels)
        else:
            raise ValueError(f"{type(self).__name__}: arch must be 'mlp' or 'conv', got {arch!r}")
        self.to_mu, self.to_logvar = nn.Linear(feat, latent_dim), nn.Linear(feat, latent_dim)
        self.in_shape, self.latent_dim, self.recon, self.recon_weight = in_shape, latent_dim, recon, float(recon_weight)

    def encode(self, x):
        """(μ, log σ²) of q(z|x), each (N, latent_dim)."""
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"{type(self).__name__}: expected input (N, *{self.in_shape}), got {tuple(x.shape)}")
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z):
        """Pixel logits (N, C, H, W); ``sigmoid`` of them is the mean image."""
        return self.decoder(z)

    def reconstruction_loss(self, x, logits):
        """Per sample: −log p(x|z) for ``bce``; ``recon_weight``·½‖x − x̂‖² for ``mse``."""
        if self.recon == "bce":
            loss = binary_cross_entropy_with_logits(logits, x, reduction="none")
        else:
            d = sigmoid(logits) - x
            loss = d * d * (0.5 * self.recon_weight)
        return loss.reshape(x.shape[0], -1).sum(axis=1)

    def forward(self, x, eps=None):
        """(pixel logits, μ, logvar, z) for a batch, with one reparameterised sample z per input."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, eps)
        return self.decode(z), mu, logvar, z

    def loss(self, x):
        """Negative ELBO averaged over the batch (a one-sample estimate; the KL is in closed form)."""
        logits, mu, logvar, _ = self(x)
        return (self.reconstruction_loss(x, logits) + gaussian_kl(mu, logvar)).mean()

    def sample(self, n, device=None):
        """``n`` images decoded from the prior (no graph)."""
        with no_grad():
            z = randn(n, self.latent_dim, device=device or self.to_mu.weight.device)
            return sigmoid(self.decode(z))


class ClusterVAE(VAE):
    """One-step clustering VAE: q(z|y) = N(μ_y, I) with trainable class means μ_y, uniform q(y), a classifier
    p(y|z) (an MLP on z). Loss per sample: reconstruction + ``cluster_kl_terms`` (see its docstring).

    Defaults follow the clustering recipe: ``recon="mse"`` with weight λ = 2.5, class means initialised to zero
    (the classifier's random init breaks the symmetry). ``predict`` takes argmax_y p(y|μ(x))."""

    def __init__(self, num_clusters, latent_dim=20, in_shape=(1, 28, 28), arch="mlp", hidden=256,
                 channels=(32, 64), classifier_hidden=256, recon="mse", recon_weight=2.5):
        super().__init__(in_shape, latent_dim, arch, hidden, channels, recon, recon_weight)
        if int(num_clusters) < 1:
            raise ValueError(f"ClusterVAE: num_clusters must be >= 1, got {num_clusters}")
        self.num_clusters = int(num_clusters)
        self.classifier = nn.Sequential(nn.Linear(latent_dim, classifier_hidden), nn.ReLU(),
                                        nn.Linear(classifier_hidden, self.num_clusters))
        self.class_means = nn.Parameter(zeros(self.num_clusters, latent_dim))

    def loss(self, x, return_parts=False):
        logits, mu, logvar, z = self(x)
        rec = self.reconstruction_loss(x, logits).mean()
        kl = cluster_kl_terms(z, logvar, self.class_means, self.classifier(z)).mean()
        return (rec + kl, {"reconstruction": rec.item(), "kl": kl.item()}) if return_parts else rec + kl

    def cluster_probs(self, x):
        """p(y|μ(x)), (N, K), without a graph."""
        with no_grad():
            return softmax(self.classifier(self.encode(x)[0]), axis=-1)

    def predict(self, x):
        """Cluster index of each input: argmax_y p(y|μ(x)) (int64 tensor (N,))."""
        return self.cluster_probs(x).argmax(axis=-1)

    def sample_clusters(self, n_per_cluster):
        """Images (K, n, C, H, W) decoded from z = μ_y + ε for each cluster y (no graph)."""
        with no_grad():
            K, D = self.class_means.shape
            eps = randn(K, n_per_cluster, D, device=self.class_means.device)
            z = (self.class_means.reshape(K, 1, D) + eps).reshape(K * n_per_cluster, D)
            return sigmoid(self.decode(z)).reshape((K, n_per_cluster) + self.in_shape)
