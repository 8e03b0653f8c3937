"""VAE ops: fused vs composed vs NumPy, gradient checks, Monte-Carlo estimators vs closed forms; VAE models."""
import math

import numpy as np
import pytest
import scipy.special as sps
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import optim
from minigrad.testing import tensors
from minigrad.models.vae import (VAE, ClusterVAE, cluster_kl_terms, cluster_kl_terms_composed, gaussian_kl,
                                 gaussian_kl_composed, gaussian_log_prob, reparameterize, reparameterize_composed)

from minigrad.testing import torch_or_skip

LOGVAR = st.floats(-2.0, 2.0, allow_nan=False, width=64)
dims = st.integers(1, 3)


def _copy(*ts):
    return [mg.Tensor(t.data.astype(np.float64, copy=True), requires_grad=True) for t in ts]


def _grads_agree(f, g, inputs, atol=1e-9):
    a, b = _copy(*inputs), _copy(*inputs)
    ya, yb = f(*a), g(*b)
    np.testing.assert_allclose(ya.numpy(), yb.numpy(), rtol=1e-10, atol=atol)
    v = mg.Tensor(np.random.default_rng(0).standard_normal(ya.shape))
    for ga, gb in zip(mg.grad(ya, a, v), mg.grad(yb, b, v)):
        np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-9, atol=atol)


# ---- NumPy references ----------------------------------------------------------------------------------------
def np_kl(mu, lv):
    return 0.5 * (mu ** 2 + np.exp(lv) - 1 - lv).sum(-1)


def np_cluster(z, lv, means, logits):
    K, D = means.shape
    logp = logits - sps.logsumexp(logits, axis=-1, keepdims=True)
    p = np.exp(logp)
    a = 0.5 * ((z[:, None, :] - means[None]) ** 2).sum(-1)
    return (p * a).sum(-1) - 0.5 * lv.sum(-1) - 0.5 * D + (p * (logp + np.log(K))).sum(-1)


@st.composite
def cluster_inputs(draw):
    n, d, k = draw(dims), draw(dims), draw(dims)
    return (draw(tensors(shape=(n, d))), draw(tensors(shape=(n, d), elements=LOGVAR)),
            draw(tensors(shape=(k, d))), draw(tensors(shape=(n, k))))


@st.composite
def gaussian_inputs(draw):
    shape = draw(st.sampled_from([(1,), (3,), (2, 3), (2, 1, 2)]))
    return draw(tensors(shape=shape)), draw(tensors(shape=shape, elements=LOGVAR)), draw(tensors(shape=shape))


# ---- forward values -----------------------------------------------------------------------------------------
@given(gaussian_inputs())
def test_reparameterize_and_kl_forward(inp):
    mu, lv, eps = inp
    np.testing.assert_allclose(reparameterize(mu, lv, eps).numpy(),
                               mu.numpy() + np.exp(0.5 * lv.numpy()) * eps.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gaussian_kl(mu, lv).numpy(), np_kl(mu.numpy(), lv.numpy()), rtol=1e-12, atol=1e-12)


@given(cluster_inputs())
def test_cluster_kl_forward(inp):
    np.testing.assert_allclose(cluster_kl_terms(*inp).numpy(), np_cluster(*[t.numpy() for t in inp]),
                               rtol=1e-10, atol=1e-10)


def test_float32_stays_float32():
    r = np.random.default_rng(1)
    f = lambda *s: mg.tensor(r.standard_normal(s).astype(np.float32))
    z, lv, m, lg = f(4, 3), f(4, 3), f(2, 3), f(4, 2)
    for t in (reparameterize(z, lv), reparameterize(z, lv, f(4, 3)), gaussian_kl(z, lv),
              cluster_kl_terms(z, lv, m, lg)):
        assert t.dtype == np.float32
    z.requires_grad = lv.requires_grad = m.requires_grad = lg.requires_grad = True
    (cluster_kl_terms(z, lv, m, lg).sum() + gaussian_kl(z, lv).sum() + reparameterize(z, lv).sum()).backward()
    assert all(t.grad.dtype == np.float32 for t in (z, lv, m, lg))


def test_kl_is_zero_at_prior_and_positive_elsewhere():
    zero = mg.zeros(5, 4, dtype="float64")
    np.testing.assert_array_equal(gaussian_kl(zero, zero).numpy(), 0.0)
    r = np.random.default_rng(2)
    mu, lv = mg.tensor(r.standard_normal((50, 4))), mg.tensor(r.standard_normal((50, 4)))
    assert (gaussian_kl(mu, lv).numpy() > 0).all()


def test_reparameterize_draws_from_the_seeded_generator():
    mu, lv = mg.zeros(1000, 2), mg.full((1000, 2), math.log(4.0))
    mg.manual_seed(3)
    a = reparameterize(mu, lv).numpy()
    mg.manual_seed(3)
    b = reparameterize(mu, lv).numpy()
    np.testing.assert_array_equal(a, b)
    assert abs(a.std() - 2.0) < 0.15 and abs(a.mean()) < 0.15


# ---- gradients ------------------------------------------------------------------------------------------------
@given(gaussian_inputs())
def test_reparameterize_gradcheck(inp):
    assert mg.gradcheck(reparameterize, list(inp))
    assert mg.gradgradcheck(reparameterize, list(inp))
    _grads_agree(reparameterize, reparameterize_composed, inp)


@given(gaussian_inputs())
def test_gaussian_kl_gradcheck(inp):
    mu, lv, _ = inp
    assert mg.gradcheck(gaussian_kl, [mu, lv])
    assert mg.gradgradcheck(gaussian_kl, [mu, lv])
    _grads_agree(gaussian_kl, gaussian_kl_composed, [mu, lv])


@given(cluster_inputs())
def test_cluster_kl_gradcheck(inp):
    assert mg.gradcheck(cluster_kl_terms, list(inp))
    _grads_agree(cluster_kl_terms, cluster_kl_terms_composed, inp)


def test_cluster_kl_composed_has_second_derivatives_and_fused_says_so():
    r = np.random.default_rng(4)
    inp = [mg.Tensor(r.standard_normal(s), requires_grad=True) for s in [(2, 3), (2, 3), (2, 3), (2, 2)]]
    assert mg.gradgradcheck(cluster_kl_terms_composed, inp)
    y = cluster_kl_terms(*inp).sum()
    with pytest.raises(RuntimeError, match="no second derivative"):
        mg.grad(y, inp, create_graph=True)


def test_eps_gets_no_gradient_unless_asked():
    mu, lv = mg.zeros(2, 2, requires_grad=True), mg.zeros(2, 2, requires_grad=True)
    eps = mg.ones(2, 2)
    reparameterize(mu, lv, eps).sum().backward()
    assert eps.grad is None
    np.testing.assert_allclose(lv.grad.numpy(), 0.5)


def test_against_torch():
    torch = torch_or_skip()
    r = np.random.default_rng(5)
    z, lv, m, lg = (r.standard_normal(s) for s in [(4, 3), (4, 3), (5, 3), (4, 5)])
    mu_t, lv_t = torch.tensor(z, requires_grad=True), torch.tensor(lv, requires_grad=True)
    q = torch.distributions.Normal(mu_t, torch.exp(0.5 * lv_t))
    kl_t = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    mu, lvm = mg.tensor(z, requires_grad=True), mg.tensor(lv, requires_grad=True)
    kl = gaussian_kl(mu, lvm)
    np.testing.assert_allclose(kl.numpy(), kl_t.detach().numpy(), rtol=1e-10)
    w = r.standard_normal(4)
    kl_t.backward(torch.tensor(w))
    kl.backward(mg.tensor(w))
    np.testing.assert_allclose(mu.grad.numpy(), mu_t.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(lvm.grad.numpy(), lv_t.grad.numpy(), rtol=1e-10, atol=1e-12)
    # the clustering terms written independently in torch
    tt = [torch.tensor(a, requires_grad=True) for a in (z, lv, m, lg)]
    logp = torch.log_softmax(tt[3], -1)
    a = 0.5 * ((tt[0][:, None] - tt[2][None]) ** 2).sum(-1)
    ref = (logp.exp() * (a + logp + math.log(5))).sum(-1) - 0.5 * tt[1].sum(-1) - 1.5
    ref.backward(torch.tensor(w))
    ours = [mg.tensor(a, requires_grad=True) for a in (z, lv, m, lg)]
    out = cluster_kl_terms(*ours)
    out.backward(mg.tensor(w))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10)
    for o, t in zip(ours, tt):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12)


# ---- bad input --------------------------------------------------------------------------------------------------
def test_bad_input_messages():
    a, b = mg.zeros(2, 3), mg.zeros(2, 4)
    with pytest.raises(ValueError, match="logvar has shape"):
        reparameterize(a, b)
    with pytest.raises(ValueError, match="eps has shape"):
        reparameterize(a, a, b)
    with pytest.raises(ValueError, match="logvar has shape"):
        gaussian_kl(a, b)
    with pytest.raises(TypeError, match="float64"):
        gaussian_kl(a, mg.zeros(2, 3, dtype="float64"))
    with pytest.raises(ValueError, match="latent axis"):
        gaussian_kl(mg.tensor(1.0), mg.tensor(1.0))
    with pytest.raises(ValueError, match="same D"):
        cluster_kl_terms(a, a, mg.zeros(5, 4), mg.zeros(2, 5))
    with pytest.raises(ValueError, match=r"logits must be \(N, K\)"):
        cluster_kl_terms(a, a, mg.zeros(5, 3), mg.zeros(2, 4))
    with pytest.raises(ValueError, match="expected z"):
        cluster_kl_terms(mg.zeros(3), mg.zeros(3), mg.zeros(5, 3), mg.zeros(2, 5))


# ---- Monte-Carlo estimators against closed forms (fixed seed; 4 standard errors) -------------------------------
S = 20000


def _within(samples, target, k=4.0):
    samples = np.asarray(samples, dtype=np.float64)
    mean, se = samples.mean(0), samples.std(0, ddof=1) / math.sqrt(len(samples))
    assert np.all(np.abs(mean - target) < k * se + 1e-12), f"MC {mean} vs closed form {target} (SE {se})"
    return mean, se


def _tile(a, requires_grad=False):
    return mg.Tensor(np.tile(np.asarray(a, dtype=np.float64), (S, 1)), requires_grad=requires_grad)


MU, LV = np.array([0.7, -1.2, 0.1]), np.array([-1.0, 0.8, -0.3])


def test_monte_carlo_kl_matches_closed_form_and_its_gradient():
    """E_ε[log q(z) − log p(z)] with z = μ + σε equals gaussian_kl; the pathwise gradient is unbiased."""
    mu, lv = _tile(MU, True), _tile(LV, True)
    eps = mg.Tensor(np.random.default_rng(6).standard_normal((S, 3)))
    z = reparameterize(mu, lv, eps)
    est = gaussian_log_prob(z, mu, lv) - gaussian_log_prob(z, mg.zeros_like(z), mg.zeros_like(z))
    closed = gaussian_kl(mg.tensor(MU[None]), mg.tensor(LV[None])).item()
    _within(est.numpy(), closed)
    g_mu, g_lv = mg.grad(est.sum(), [mu, lv])  # row i is the gradient of sample i
    _within(g_mu.numpy(), MU)
    _within(g_lv.numpy(), 0.5 * (np.exp(LV) - 1))


def test_monte_carlo_detects_a_convention_mismatch():
    """Negative control: sampling with σ = exp(logvar) (a log-std convention) is caught by the same test."""
    eps = np.random.default_rng(7).standard_normal((S, 3))
    mu, lv = _tile(MU), _tile(LV)
    z = mu + mg.exp(lv) * mg.Tensor(eps)
    est = (gaussian_log_prob(z, mu, lv) - gaussian_log_prob(z, mg.zeros_like(z), mg.zeros_like(z))).numpy()
    closed = gaussian_kl(mg.tensor(MU[None]), mg.tensor(LV[None])).item()
    assert abs(est.mean() - closed) > 10 * est.std() / math.sqrt(S)


def _linear_gaussian(rng, P=4, D=2, s2=0.5):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s²I) with orthogonal columns of W, so the posterior is diagonal."""
    Q, _ = np.linalg.qr(rng.standard_normal((P, D)))
    W = Q * np.array([1.5, 0.7])[:D]
    b = rng.standard_normal(P)
    x = W @ rng.standard_normal(D) + b + math.sqrt(s2) * rng.standard_normal(P)
    cov = W @ W.T + s2 * np.eye(P)
    diff = x - b
    log_px = -0.5 * (diff @ np.linalg.solve(cov, diff) + np.linalg.slogdet(cov)[1] + P * math.log(2 * math.pi))
    post_var = 1 / (1 + (W ** 2).sum(0) / s2)
    post_mu = post_var * (W.T @ diff) / s2
    return W, b, x, s2, log_px, post_mu, np.log(post_var)


def _elbo_closed(W, b, x, s2, mu, lv):
    P = len(x)
    r = x - W @ mu - b
    rec = -0.5 * P * math.log(2 * math.pi * s2) - 0.5 / s2 * (r @ r + (np.exp(lv) * (W ** 2).sum(0)).sum())
    return rec - gaussian_kl(mg.tensor(mu[None]), mg.tensor(lv[None])).item()


def _elbo_mc(W, b, x, s2, mu, lv, seed):
    mu_t, lv_t = _tile(mu), _tile(lv)
    z = reparameterize(mu_t, lv_t, mg.Tensor(np.random.default_rng(seed).standard_normal(mu_t.shape)))
    xs, zero = _tile(x), mg.zeros_like(z)
    rec = gaussian_log_prob(xs, z @ mg.tensor(W.T) + mg.tensor(b), mg.full(xs.shape, math.log(s2), dtype="float64"))
    return (rec + gaussian_log_prob(z, zero, zero) - gaussian_log_prob(z, mu_t, lv_t)).numpy()


def test_monte_carlo_elbo_matches_closed_form_and_bounds_log_evidence():
    rng = np.random.default_rng(8)
    W, b, x, s2, log_px, post_mu, post_lv = _linear_gaussian(rng)
    for mu, lv in [(rng.standard_normal(2), rng.standard_normal(2)), (post_mu + 0.3, post_lv - 0.5)]:
        closed = _elbo_closed(W, b, x, s2, mu, lv)
        _within(_elbo_mc(W, b, x, s2, mu, lv, seed=9), closed)
        assert closed < log_px
    # at the exact posterior the bound is tight and the estimator has zero variance
    assert abs(_elbo_closed(W, b, x, s2, post_mu, post_lv) - log_px) < 1e-10
    np.testing.assert_allclose(_elbo_mc(W, b, x, s2, post_mu, post_lv, seed=10), log_px, atol=1e-9)


def test_cluster_kl_is_unbiased_for_the_joint_kl():
    """With p(y) fixed: E_ε[L] = Σ_y p_y KL(N(μ, σ²) ‖ N(μ_y, I)) + KL(p ‖ uniform). With p(y|z) depending on z:
    E_ε[L] = E_z[Σ_y p(y|z) log(p(z|x) p(y|z) K / N(z; μ_y, I))], both estimated from the same ε."""
    rng = np.random.default_rng(11)
    K = 4
    means = rng.standard_normal((K, 3))
    logits = rng.standard_normal(K)
    mu, lv = _tile(MU), _tile(LV)
    z = reparameterize(mu, lv, mg.Tensor(rng.standard_normal((S, 3))))
    est = cluster_kl_terms(z, lv, mg.tensor(means), _tile(logits)).numpy()
    p = np.exp(logits - sps.logsumexp(logits))
    kls = gaussian_kl(mg.tensor(MU - means), mg.tensor(np.tile(LV, (K, 1)))).numpy()
    _within(est, p @ kls + (p * np.log(K * p)).sum())

    A = mg.tensor(rng.standard_normal((3, K)))
    lg = z @ A
    est = cluster_kl_terms(z, lv, mg.tensor(means), lg).numpy()
    logp = mg.log_softmax(lg, axis=-1)
    log_q = mg.stack([gaussian_log_prob(z, mg.tensor(np.tile(m, (S, 1))), mg.zeros_like(z)) for m in means], 1)
    direct = (mg.exp(logp) * (mg.unsqueeze(gaussian_log_prob(z, mu, lv), 1) + logp + math.log(K) - log_q)).sum(-1)
    _within(est - direct.numpy(), 0.0)


# ---- models ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_vae_shapes_loss_and_gradients(arch):
    mg.manual_seed(0)
    model = VAE(in_shape=(1, 8, 8), latent_dim=3, arch=arch, hidden=16, channels=(4, 8))
    x = mg.rand(5, 1, 8, 8)
    logits, mu, logvar, z = model(x)
    assert logits.shape == (5, 1, 8, 8) and mu.shape == logvar.shape == z.shape == (5, 3)
    loss = model.loss(x)
    assert loss.shape == () and loss.dtype == np.float32
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
    assert model.sample(4).shape == (4, 1, 8, 8)


def test_vae_loss_is_the_negative_elbo_estimate():
    mg.manual_seed(1)
    model = VAE(in_shape=(1, 4, 4), latent_dim=2, hidden=8)
    x = mg.rand(3, 1, 4, 4, dtype="float64")
    model.to(dtype="float64")
    mg.manual_seed(2)
    loss = model.loss(x).item()
    mg.manual_seed(2)
    mu, lv = model.encode(x)
    z = reparameterize(mu, lv)
    p = mg.sigmoid(model.decode(z)).numpy().reshape(3, -1)
    xs = x.numpy().reshape(3, -1)
    nll = -(xs * np.log(p) + (1 - xs) * np.log(1 - p)).sum(1)
    np.testing.assert_allclose(loss, (nll + np_kl(mu.numpy(), lv.numpy())).mean(), rtol=1e-9)


def test_cluster_vae_api():
    mg.manual_seed(0)
    model = ClusterVAE(4, latent_dim=3, in_shape=(1, 8, 8), hidden=16, classifier_hidden=8)
    x = mg.rand(6, 1, 8, 8)
    loss, parts = model.loss(x, return_parts=True)
    assert set(parts) == {"reconstruction", "kl"}
    loss.backward()
    assert model.class_means.grad.shape == (4, 3)
    probs = model.cluster_probs(x)
    np.testing.assert_allclose(probs.numpy().sum(1), 1.0, rtol=1e-6)
    pred = model.predict(x)
    assert pred.shape == (6,) and pred.dtype == np.int64
    assert model.sample_clusters(2).shape == (4, 2, 1, 8, 8)


def test_cluster_vae_separates_two_kinds_of_images():
    """Two shapes (top half lit / bottom half lit) with noise: a few hundred steps find them without labels."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    X = np.zeros((400, 1, 4, 4), np.float32)
    X[labels == 0, :, :2] = 1
    X[labels == 1, :, 2:] = 1
    X = np.clip(X + 0.1 * rng.standard_normal(X.shape), 0, 1).astype(np.float32)
    mg.manual_seed(0)
    model = ClusterVAE(2, latent_dim=2, in_shape=(1, 4, 4), hidden=16, classifier_hidden=16)
    rest = [p for n, p in model.named_parameters() if n != "class_means"]
    opt = optim.Adam([{"params": rest}, {"params": [model.class_means], "lr": 3e-2}], lr=1e-2)
    for step in range(150):
        idx = rng.integers(0, 400, 50)
        loss = model.loss(mg.tensor(X[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = model.predict(mg.tensor(X)).numpy()
    acc = max((pred == labels).mean(), (pred != labels).mean())
    assert acc > 0.98


def test_model_bad_arguments():
    with pytest.raises(ValueError, match="arch"):
        VAE(arch="rnn")
    with pytest.raises(ValueError, match="recon"):
        VAE(recon="l1")
    with pytest.raises(ValueError, match="in_shape"):
        VAE(in_shape=(28, 28))
    with pytest.raises(ValueError, match="divisible by 4"):
        VAE(in_shape=(1, 6, 6), arch="conv")
    with pytest.raises(ValueError, match="num_clusters"):
        ClusterVAE(0)
    with pytest.raises(ValueError, match="expected input"):
        VAE(in_shape=(1, 4, 4), hidden=4).encode(mg.zeros(2, 1, 5, 5))


# ---- the example's metrics -----------------------------------------------------------------------------------------
def test_cluster_metrics():
    from examples.vae_cluster import hungarian_accuracy, majority_accuracy, nmi
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    perm = np.array([2, 0, 1])[labels]
    assert majority_accuracy(perm, labels) == hungarian_accuracy(perm, labels) == 1.0
    assert abs(nmi(perm, labels) - 1.0) < 1e-12
    merged = np.where(labels == 2, 1, labels)  # two labels in one cluster
    assert majority_accuracy(merged, labels) == hungarian_accuracy(merged, labels) == 7 / 9
    split = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3])  # label 2 over two clusters: majority may reuse a label
    assert majority_accuracy(split, labels) == 8 / 9 and hungarian_accuracy(split, labels) == 6 / 9
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 300), rng.integers(0, 4, 300)
    assert abs(nmi(a, b) - sk.normalized_mutual_info_score(b, a)) < 1e-10


def test_example_falls_back_to_digits_with_a_notice(monkeypatch, capsys):
    pytest.importorskip("sklearn")
    from minigrad import data
    from examples import vae_cluster

    def missing(**kw):
        raise data.DatasetNotFound("no MNIST here")
    monkeypatch.setattr(data, "load_mnist", missing)
    Xtr, ytr, Xte, yte, used = vae_cluster.load("mnist")
    assert used == "digits" and Xtr.shape[1:] == (1, 8, 8)
    assert "falling back to the 8x8 digits" in capsys.readouterr().out
