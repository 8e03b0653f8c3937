"""GAN losses, gradient penalties (double backprop) and cascading rejection: composed references, gradient checks,
finite differences, geometry, and PyTorch as an oracle."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad import nn, optim
from minigrad.testing import away_from, tensors
from minigrad.models.gan import (LOSSES, CascadingRejectionHead, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator,
                        MLPGenerator, cascading_rejection,
                        cascading_rejection_composed, discriminator_loss, discriminator_loss_composed,
                        generator_loss, generator_loss_composed, input_gradient, interpolate, r1_penalty, r2_penalty,
                        train_step, wgan_gp_penalty, zero_centered_gp)

from minigrad.testing import torch_or_skip

KINDS = list(LOSSES)
SCORE_SHAPES = st.sampled_from([(1,), (3,), (4, 1), (2, 3)])
SCORES = away_from(kinks=(-1.0, 1.0), margin=0.05, lo=-4.0, hi=4.0)  # hinge's kinks at ±1


def _copy(*ts):
    return [mg.Tensor(t.data.astype(np.float64, copy=True), requires_grad=True) for t in ts]


def _agree(f, g, inputs, rtol=1e-10, atol=1e-12):
    """Same value and same vector-Jacobian product for a random upstream gradient."""
    a, b = _copy(*inputs), _copy(*inputs)
    ya, yb = f(*a), g(*b)
    np.testing.assert_allclose(ya.numpy(), yb.numpy(), rtol=rtol, atol=atol)
    v = mg.Tensor(np.random.default_rng(0).standard_normal(ya.shape))
    for ga, gb in zip(mg.grad(ya, a, v), mg.grad(yb, b, v)):
        np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-9, atol=atol)


@st.composite
def score_pairs(draw):
    return (draw(tensors(shape=draw(SCORE_SHAPES), elements=SCORES)),
            draw(tensors(shape=draw(SCORE_SHAPES), elements=SCORES)))


# ---- losses ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@given(pair=score_pairs())
def test_losses_match_composed_and_gradcheck(kind, pair):
    real, fake = pair
    d = lambda r, f: discriminator_loss(r, f, kind)
    g = lambda f: generator_loss(f, kind)
    _agree(d, lambda r, f: discriminator_loss_composed(r, f, kind), [real, fake])
    _agree(g, lambda f: generator_loss_composed(f, kind), [fake])
    assert mg.gradcheck(d, [real, fake]) and mg.gradcheck(g, [fake])
    assert mg.gradgradcheck(d, [real, fake]) and mg.gradgradcheck(g, [fake])


def test_loss_values_by_hand():
    r, f = mg.tensor([2.0, -1.0], dtype="float64"), mg.tensor([0.5], dtype="float64")
    sp = lambda x: np.log1p(np.exp(x))
    expect_d = {"minimax": (sp(-2) + sp(1)) / 2 + sp(0.5), "hinge": (0 + 2) / 2 + 1.5,
                "least_squares": (0.5 * 1 + 0.5 * 4) / 2 + 0.5 * 0.25, "wasserstein": -0.5 + 0.5}
    expect_d["non_saturating"] = expect_d["minimax"]
    expect_g = {"minimax": -sp(0.5), "non_saturating": sp(-0.5), "hinge": -0.5, "least_squares": 0.125,
                "wasserstein": -0.5}
    for k in KINDS:
        assert discriminator_loss(r, f, k).item() == pytest.approx(expect_d[k], rel=1e-12)
        assert generator_loss(f, k).item() == pytest.approx(expect_g[k], rel=1e-12)


@pytest.mark.parametrize("kind", ["minimax", "non_saturating"])
def test_logit_losses_are_stable_for_large_logits(kind):
    big = mg.tensor([-1e4, -100.0, 100.0, 1e4], requires_grad=True)  # float32
    ld, lg = discriminator_loss(big, big, kind), generator_loss(big, kind)
    gr, = mg.grad(ld, big)
    gg, = mg.grad(lg, big)
    for t in (ld, lg, gr, gg):
        assert t.dtype == np.float32 and np.isfinite(t.numpy()).all()
    # mean softplus(-s) + mean softplus(s) = mean(|s| + 2 log1p(e^{-|s|})) = mean |s| for these logits
    assert ld.item() == pytest.approx(np.abs(big.numpy()).mean(), rel=1e-6)
    # ∂/∂s of [softplus(-s) + softplus(s)]/4 = (σ(s) − σ(−s))/4 = ±1/4 saturated
    np.testing.assert_allclose(gr.numpy(), [-0.25, -0.25, 0.25, 0.25], rtol=1e-6)


def test_losses_keep_float32_and_skip_constant_inputs():
    r = mg.tensor(np.ones(3, np.float32), requires_grad=True)
    f = mg.tensor(np.zeros(3, np.float32))  # no grad
    for k in KINDS:
        loss = discriminator_loss(r, f, k)
        assert loss.dtype == np.float32 and loss.shape == ()
        loss.backward()
        assert r.grad.dtype == np.float32 and f.grad is None
        r.grad = None


def test_losses_bad_input():
    x = mg.zeros(3)
    with pytest.raises(ValueError, match="kind must be one of"):
        discriminator_loss(x, x, "vanilla")
    with pytest.raises(ValueError, match="kind must be one of"):
        generator_loss(x, "bce")
    with pytest.raises(TypeError, match="different dtypes"):
        discriminator_loss(x, mg.zeros(3, dtype="float64"))
    with pytest.raises(ValueError, match="non-empty floating"):
        generator_loss(mg.zeros(0))
    with pytest.raises(ValueError, match="real_scores must be a non-empty floating"):
        discriminator_loss(mg.tensor([1, 2]), x)


def test_losses_against_torch():
    torch = torch_or_skip()
    tf = torch.nn.functional
    rng = np.random.default_rng(1)
    r, f = rng.standard_normal(5) * 3, rng.standard_normal(4) * 3
    ref_d = {"non_saturating": lambda r, f: tf.binary_cross_entropy_with_logits(r, torch.ones_like(r)) +
             tf.binary_cross_entropy_with_logits(f, torch.zeros_like(f)),
             "hinge": lambda r, f: tf.relu(1 - r).mean() + tf.relu(1 + f).mean(),
             "least_squares": lambda r, f: 0.5 * tf.mse_loss(r, torch.ones_like(r)) + 0.5 * (f ** 2).mean(),
             "wasserstein": lambda r, f: f.mean() - r.mean()}
    ref_g = {"minimax": lambda f: -tf.binary_cross_entropy_with_logits(f, torch.zeros_like(f)),
             "non_saturating": lambda f: tf.binary_cross_entropy_with_logits(f, torch.ones_like(f)),
             "hinge": lambda f: -f.mean(), "least_squares": lambda f: 0.5 * tf.mse_loss(f, torch.ones_like(f))}
    for kind, ref in ref_d.items():
        rt, ft = torch.tensor(r, requires_grad=True), torch.tensor(f, requires_grad=True)
        rm, fm = mg.tensor(r, requires_grad=True), mg.tensor(f, requires_grad=True)
        lt, lm = ref(rt, ft), discriminator_loss(rm, fm, kind)
        lt.backward()
        lm.backward()
        assert lm.item() == pytest.approx(lt.item(), rel=1e-12)
        np.testing.assert_allclose(rm.grad.numpy(), rt.grad.numpy(), rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(fm.grad.numpy(), ft.grad.numpy(), rtol=1e-10, atol=1e-15)
    for kind, ref in ref_g.items():
        ft, fm = torch.tensor(f, requires_grad=True), mg.tensor(f, requires_grad=True)
        lt, lm = ref(ft), generator_loss(fm, kind)
        lt.backward()
        lm.backward()
        assert lm.item() == pytest.approx(lt.item(), rel=1e-12)
        np.testing.assert_allclose(fm.grad.numpy(), ft.grad.numpy(), rtol=1e-10, atol=1e-15)


# ---- gradient penalties -----------------------------------------------------------------------------------------
def _mlp(act):
    """A functional two-layer discriminator on explicit parameter tensors (so gradcheck can perturb them)."""
    return lambda W1, b1, W2, b2: (lambda x: act(x @ W1.mT + b1) @ W2.mT + b2)


SMOOTH = {"tanh": mg.tanh, "softplus": mg.softplus, "sigmoid": mg.sigmoid}  # C² (ELU is not: its h'' jumps at 0)


def _penalties(alpha):
    return {"r1": lambda D, real, fake: r1_penalty(D, real), "r2": lambda D, real, fake: r2_penalty(D, fake),
            "wgan_gp": lambda D, real, fake: wgan_gp_penalty(D, real, fake, alpha=alpha),
            "zero_gp": lambda D, real, fake: zero_centered_gp(D, real, fake, alpha=alpha)}


@pytest.mark.parametrize("penalty", ["r1", "r2", "wgan_gp", "zero_gp"])
@given(act=st.sampled_from(sorted(SMOOTH)), params=st.tuples(tensors(shape=(4, 3)), tensors(shape=(4,)),
                                                              tensors(shape=(1, 4)), tensors(shape=(1,))),
       xs=st.tuples(tensors(shape=(2, 3), requires_grad=False), tensors(shape=(2, 3), requires_grad=False)))
def test_penalty_parameter_gradient_matches_finite_differences(penalty, act, params, xs):
    real, fake = xs
    pen = _penalties(alpha=mg.tensor([0.3, 0.8], dtype="float64"))[penalty]
    D = _mlp(SMOOTH[act])
    if penalty == "wgan_gp":  # ‖∇D‖ is not differentiable where ∇D = 0: finite differences need it away from there
        x = interpolate(real, fake, alpha=mg.tensor([0.3, 0.8], dtype="float64"))
        assume(np.sqrt((input_gradient(D(*params), x).numpy() ** 2).sum(1)).min() > 0.1)
    assert mg.gradcheck(lambda *p: pen(D(*p), real, fake), list(params), atol=1e-6, rtol=1e-4)


def test_conv_penalty_parameter_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    w = mg.tensor(rng.standard_normal((2, 1, 3, 3)) * 0.5, requires_grad=True)
    b = mg.tensor(rng.standard_normal(2) * 0.1, requires_grad=True)
    v = mg.tensor(rng.standard_normal((1, 2 * 3 * 3)) * 0.5, requires_grad=True)
    x = mg.tensor(rng.standard_normal((2, 1, 6, 6)))
    D = lambda w, b, v: (lambda x: F.leaky_relu(F.conv2d(x, w, b, stride=2, padding=1), 0.2).reshape(2, -1) @ v.mT)
    assert mg.gradcheck(lambda w, b, v: r1_penalty(D(w, b, v), x), [w, b, v], atol=1e-6, rtol=1e-4)
    Dt = lambda w, b, v: (lambda x: mg.tanh(F.conv2d(x, w, b, stride=2, padding=1)).reshape(2, -1) @ v.mT)
    fake = mg.tensor(rng.standard_normal((2, 1, 6, 6)))
    pen = lambda w, b, v: wgan_gp_penalty(Dt(w, b, v), x, fake, alpha=0.4)
    assert mg.gradcheck(pen, [w, b, v], atol=1e-6, rtol=1e-4)


def test_penalties_of_a_linear_discriminator_by_hand():
    a = mg.tensor([[3.0], [4.0]], dtype="float64", requires_grad=True)  # D(x) = x·a + 1, ∇D = a, ‖a‖ = 5
    D = lambda x: x @ a + 1.0
    x = mg.tensor(np.random.default_rng(3).standard_normal((6, 2)))
    y = mg.tensor(np.random.default_rng(4).standard_normal((6, 2)))
    assert r1_penalty(D, x).item() == pytest.approx(25.0)
    assert r2_penalty(D, y).item() == pytest.approx(25.0)
    assert zero_centered_gp(D, x, y).item() == pytest.approx(25.0)
    assert wgan_gp_penalty(D, x, y).item() == pytest.approx(16.0)
    assert wgan_gp_penalty(D, x, y, center=2.0).item() == pytest.approx(9.0)
    g, = mg.grad(wgan_gp_penalty(D, x, y), a)  # d/da (‖a‖ − 1)² = 2(‖a‖ − 1)·a/‖a‖
    np.testing.assert_allclose(g.numpy(), 2 * 4 * a.numpy() / 5)


def test_penalty_never_reaches_the_generator_and_keeps_float32():
    G, D = MLPGenerator(2, 2, 8, 1), MLPDiscriminator(2, 8, 1)
    fake = G(mg.randn(4, 2))
    real = mg.randn(4, 2)
    for p in (r1_penalty(D, real), r2_penalty(D, fake), wgan_gp_penalty(D, real, fake)):
        assert p.dtype == np.float32
        grads = mg.grad(p, list(G.parameters()) + list(D.parameters()), allow_unused=True)
        assert all(g is None for g in grads[:len(list(G.parameters()))])
        assert any(g is not None for g in grads[len(list(G.parameters())):])


def test_interpolate():
    real, fake = mg.ones(3, 2), mg.zeros(3, 2)
    np.testing.assert_array_equal(interpolate(real, fake, alpha=1.0).numpy(), 1.0)
    np.testing.assert_allclose(interpolate(real, fake, alpha=mg.tensor([0.0, 0.5, 1.0])).numpy()[:, 0], [0, .5, 1])
    a = interpolate(real, fake).numpy()[:, 0]
    assert a.dtype == np.float32 and ((a >= 0) & (a <= 1)).all()
    with pytest.raises(ValueError, match="one per sample"):
        interpolate(real, fake, alpha=mg.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="same shape"):
        interpolate(real, mg.zeros(2, 2))


def test_input_gradient_bad_discriminator():
    with pytest.raises(ValueError, match="same first dimension"):
        input_gradient(lambda x: x.sum(), mg.ones(3, 2))


def _layer_cases(torch):
    """(name, minigrad discriminator, the same in torch, input shape): every layer a discriminator may use."""
    tnn = torch.nn
    def mlp(mid_m, mid_t):
        return (nn.Sequential(nn.Linear(3, 5), *mid_m, nn.Linear(5, 1)),
                tnn.Sequential(tnn.Linear(3, 5), *mid_t, tnn.Linear(5, 1)), (4, 3))
    cases = {name: mlp([m], [t]) for name, m, t in [
        ("LeakyReLU", nn.LeakyReLU(0.2), tnn.LeakyReLU(0.2)), ("ReLU", nn.ReLU(), tnn.ReLU()),
        ("Tanh", nn.Tanh(), tnn.Tanh()), ("Sigmoid", nn.Sigmoid(), tnn.Sigmoid()), ("ELU", nn.ELU(), tnn.ELU()),
        ("GELU", nn.GELU(), tnn.GELU()), ("SiLU", nn.SiLU(), tnn.SiLU()), ("Softplus", nn.Softplus(), tnn.Softplus())]}
    cases["LayerNorm"] = mlp([nn.LayerNorm(5), nn.Tanh()], [tnn.LayerNorm(5), tnn.Tanh()])
    cases["Conv2d"] = (nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                     nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Flatten(),
                                     nn.Linear(16, 1)),
                       tnn.Sequential(tnn.Conv2d(1, 3, 3, stride=2, padding=1), tnn.LeakyReLU(0.2),
                                      tnn.Conv2d(3, 4, 3, stride=2, padding=1), tnn.LeakyReLU(0.2), tnn.Flatten(),
                                      tnn.Linear(16, 1)), (3, 1, 8, 8))
    cases["ConvTranspose2d"] = (nn.Sequential(nn.ConvTranspose2d(1, 2, 4, stride=2, padding=1), nn.Tanh(),
                                              nn.Flatten(), nn.Linear(128, 1)),
                                tnn.Sequential(tnn.ConvTranspose2d(1, 2, 4, stride=2, padding=1), tnn.Tanh(),
                                               tnn.Flatten(), tnn.Linear(128, 1)), (2, 1, 4, 4))
    for name, m, t in [("AvgPool2d", nn.AvgPool2d(2), tnn.AvgPool2d(2)),
                       ("MaxPool2d", nn.MaxPool2d(2), tnn.MaxPool2d(2))]:
        cases[name] = (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), m, nn.Flatten(), nn.Linear(32, 1)),
                       tnn.Sequential(tnn.Conv2d(1, 2, 3, padding=1), tnn.Tanh(), t, tnn.Flatten(), tnn.Linear(32, 1)),
                       (2, 1, 8, 8))
    return cases


LAYERS = ["LeakyReLU", "ReLU", "Tanh", "Sigmoid", "ELU", "GELU", "SiLU", "Softplus", "LayerNorm", "Conv2d",
          "ConvTranspose2d", "AvgPool2d", "MaxPool2d"]


@pytest.mark.parametrize("layer", LAYERS)
def test_penalties_match_torch_double_backprop(layer):
    torch = torch_or_skip()
    model, tmodel, shape = _layer_cases(torch)[layer]
    model.to(dtype="float64")
    tmodel = tmodel.double()
    tmodel.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    rng = np.random.default_rng(5)
    real, fake, alpha = rng.standard_normal(shape), rng.standard_normal(shape), rng.random(shape[0])

    def torch_penalty(kind):
        a = alpha.reshape((-1,) + (1,) * (len(shape) - 1))
        x = real if kind == "r1" else fake if kind == "r2" else a * real + (1 - a) * fake
        x = torch.tensor(x, requires_grad=True)
        g, = torch.autograd.grad(tmodel(x).sum(), x, create_graph=True)
        sq = (g ** 2).reshape(len(g), -1).sum(1)
        return ((sq.sqrt() - 1) ** 2).mean() if kind == "wgan_gp" else sq.mean()

    a = mg.tensor(alpha)
    ours = {"r1": lambda: r1_penalty(model, real), "r2": lambda: r2_penalty(model, fake),
            "wgan_gp": lambda: wgan_gp_penalty(model, real, fake, alpha=a),
            "zero_gp": lambda: zero_centered_gp(model, real, fake, alpha=a)}
    params, tparams = list(model.parameters()), list(tmodel.parameters())
    for kind, fn in ours.items():
        p, pt = fn(), torch_penalty(kind)
        assert p.item() == pytest.approx(pt.item(), rel=1e-9, abs=1e-14)
        gs = mg.grad(p, params, allow_unused=True)
        gts = torch.autograd.grad(pt, tparams, allow_unused=True)
        for g, gt, q in zip(gs, gts, params):
            g = np.zeros(q.shape) if g is None else g.numpy()
            gt = np.zeros(q.shape) if gt is None else gt.numpy()
            np.testing.assert_allclose(g, gt, rtol=1e-7, atol=1e-12, err_msg=f"{layer} {kind}")


def test_dirac_gan_vector_fields_by_hand():
    """On the Dirac-GAN (D(x) = ψx, data at 0, generator at θ) the engine's fields equal the closed forms."""
    lam = 0.7
    for theta, psi in [(1.3, -0.4), (-0.5, 2.0)]:
        th = mg.tensor([[theta]], dtype="float64", requires_grad=True)
        ps = mg.tensor(psi, dtype="float64", requires_grad=True)
        D = lambda x: x * ps
        real = mg.zeros(1, 1, dtype="float64")
        sig = lambda t: 1 / (1 + np.exp(-t))
        ld = discriminator_loss(D(real), D(th), "minimax")
        lg = generator_loss(D(th), "minimax")
        assert mg.grad(ld, ps)[0].item() == pytest.approx(sig(psi * theta) * theta)
        assert mg.grad(lg, th)[0].item() == pytest.approx(-sig(psi * theta) * psi)
        wgp = wgan_gp_penalty(D, real, th.detach())
        assert mg.grad(wgp * lam, ps)[0].item() == pytest.approx(2 * lam * (abs(psi) - 1) * np.sign(psi))
        assert mg.grad(r1_penalty(D, real) * (lam / 2), ps)[0].item() == pytest.approx(lam * psi)


# ---- cascading rejection ------------------------------------------------------------------------------------------
def np_cascade(v, W):
    """Reference with explicit projection matrices: s_i = v P_1ᵀ…P_{i−1}ᵀ w_i, P = I − wwᵀ/‖w‖²."""
    d = W.shape[1]
    P, out = np.eye(d), []
    for w in W:
        out.append(v @ P.T @ w)
        P = (np.eye(d) - np.outer(w, w) / (w @ w)) @ P
    return np.stack(out, axis=1)


NONZERO = away_from(kinks=(0.0,), margin=0.3, lo=-2.0, hi=2.0)


@st.composite
def cascade_inputs(draw):
    b, d, k = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return draw(tensors(shape=(b, d))), draw(tensors(shape=(k, d), elements=NONZERO))


@given(cascade_inputs())
def test_cascading_rejection_forward_gradcheck_and_composed(inp):
    v, W = inp
    np.testing.assert_allclose(cascading_rejection(v, W).numpy(), np_cascade(v.numpy(), W.numpy()),
                               rtol=1e-9, atol=1e-10)
    assert mg.gradcheck(cascading_rejection, [v, W], atol=1e-6, rtol=1e-4)
    assert mg.gradgradcheck(cascading_rejection, [v, W], atol=1e-6, rtol=1e-4)
    _agree(cascading_rejection, cascading_rejection_composed, [v, W], rtol=1e-9, atol=1e-10)


@given(cascade_inputs())
def test_cascading_rejection_geometry(inp):
    v, W = (t.numpy() for t in inp)
    scores, rs = cascading_rejection_composed(mg.tensor(v), mg.tensor(W), return_residuals=True)
    s, rs = scores.numpy(), [r.numpy() for r in rs]
    n = (W * W).sum(1)
    for i, w in enumerate(W):
        np.testing.assert_allclose(rs[i + 1] @ w, 0.0, atol=1e-9 * (1 + np.abs(v).sum()))  # v_{i+1} ⟂ w_i
        np.testing.assert_allclose(s[:, i], rs[i] @ w, rtol=1e-10, atol=1e-12)
    # what each step removed is (s_i/n_i) w_i: v = v_{K+1} + Σ_i (s_i/n_i) w_i, and ‖v‖² = ‖v_{K+1}‖² + Σ s_i²/n_i
    np.testing.assert_allclose(rs[-1] + (s / n) @ W, v, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose((v ** 2).sum(1), (rs[-1] ** 2).sum(1) + (s ** 2 / n).sum(1), rtol=1e-9, atol=1e-9)


def test_cascading_rejection_special_cases():
    rng = np.random.default_rng(6)
    v = rng.standard_normal((5, 4))
    Q = np.linalg.qr(rng.standard_normal((4, 4)))[0][:3] * np.array([[2.0], [0.5], [3.0]])  # orthogonal rows
    np.testing.assert_allclose(cascading_rejection(v, Q).numpy(), v @ Q.T, rtol=1e-10, atol=1e-12)
    W = np.stack([Q[0], -2.5 * Q[0], Q[1]])  # a repeated direction sees nothing the first one did not
    s = cascading_rejection(v, W).numpy()
    np.testing.assert_allclose(s[:, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(s[:, 2], v @ Q[1] - (v @ Q[0]) * (Q[0] @ Q[1]) / (Q[0] @ Q[0]), atol=1e-12)
    W = rng.standard_normal((3, 4))  # scaling w_i scales score i only
    W2 = W * np.array([[1.0], [-3.0], [1.0]])
    a, b = cascading_rejection(v, W).numpy(), cascading_rejection(v, W2).numpy()
    np.testing.assert_allclose(b, a * np.array([1.0, -3.0, 1.0]), rtol=1e-10, atol=1e-12)


def test_cascading_rejection_float32_bad_input_and_head():
    v, W = mg.randn(4, 3, requires_grad=True), mg.randn(2, 3, requires_grad=True)
    s = cascading_rejection(v, W)
    assert s.dtype == np.float32 and s.shape == (4, 2)
    s.sum().backward()
    assert v.grad.dtype == np.float32 and W.grad.dtype == np.float32
    with pytest.raises(ValueError, match="same d"):
        cascading_rejection(v, mg.randn(2, 4))
    with pytest.raises(TypeError, match="float64"):
        cascading_rejection(v, mg.randn(2, 3, dtype="float64"))
    head = CascadingRejectionHead(3, 2)
    np.testing.assert_allclose(head(v).numpy()[:, 0], (v @ head.weight[0]).numpy() + head.bias.numpy()[0], rtol=1e-6)


def test_cascading_rejection_against_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(7)
    v, W, g = rng.standard_normal((5, 6)), rng.standard_normal((4, 6)), rng.standard_normal((5, 4))
    vt, Wt = torch.tensor(v, requires_grad=True), torch.tensor(W, requires_grad=True)
    r, out = vt, []
    for w in Wt:
        s = r @ w
        out.append(s)
        r = r - (s / (w @ w))[:, None] * w
    st_ = torch.stack(out, 1)
    st_.backward(torch.tensor(g))
    vm, Wm = mg.tensor(v, requires_grad=True), mg.tensor(W, requires_grad=True)
    sm = cascading_rejection(vm, Wm)
    sm.backward(mg.tensor(g))
    np.testing.assert_allclose(sm.numpy(), st_.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(vm.grad.numpy(), vt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(Wm.grad.numpy(), Wt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_r1_through_a_cascading_head_is_a_true_second_derivative():
    """R1 on a discriminator with the fused head and with the composed head: same gradient for every weight."""
    D = MLPDiscriminator(3, 6, depth=1, num_scores=3)
    D.to(dtype="float64")
    x = mg.tensor(np.random.default_rng(8).standard_normal((4, 3)))
    composed = lambda x: cascading_rejection_composed(D.features(x), D.head.weight) + D.head.bias
    params = list(D.parameters())
    ga = mg.grad(r1_penalty(D, x), params, allow_unused=True)
    gb = mg.grad(r1_penalty(composed, x), params, allow_unused=True)
    for a, b in zip(ga, gb):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-12)


# ---- a training step -----------------------------------------------------------------------------------------------
def test_train_step_runs_and_updates_ema():
    mg.manual_seed(0)
    G, D = MLPGenerator(2, 2, 16, 2), MLPDiscriminator(2, 16, 2, num_scores=2)
    og, od = optim.Adam(G.parameters(), lr=1e-3), optim.Adam(D.parameters(), lr=1e-3)
    ema = optim.EMA(G, 0.9)
    before = {k: v.copy() for k, v in ema.shadow.items()}
    real = mg.randn(8, 2)
    out = train_step(G, D, og, od, real, "hinge", r1_gamma=1.0, gp_weight=1.0, ema=ema)
    assert set(out) == {"loss_d", "loss_g", "r1", "gp"} and all(np.isfinite(v) for v in out.values())
    assert any(not np.array_equal(before[k], ema.shadow[k]) for k in before)
    assert all(p.requires_grad for p in D.parameters())


def test_dcgan_modules_match_torch():
    """Generator and discriminator (with BatchNorm, training mode) against the same layers in PyTorch."""
    torch = torch_or_skip()
    tnn = torch.nn
    c, z = 4, np.random.default_rng(9).standard_normal((3, 8))
    G, D = DCGANGenerator(8, c), DCGANDiscriminator(c, batch_norm=True, num_scores=1)
    G.to(dtype="float64")
    D.to(dtype="float64")
    Gt = tnn.Sequential(tnn.Linear(8, 2 * c * 49), tnn.Unflatten(1, (2 * c, 7, 7)), tnn.BatchNorm2d(2 * c), tnn.ReLU(),
                        tnn.ConvTranspose2d(2 * c, c, 4, 2, 1), tnn.BatchNorm2d(c), tnn.ReLU(),
                        tnn.ConvTranspose2d(c, 1, 4, 2, 1), tnn.Tanh()).double()
    Dt = tnn.Sequential(tnn.Conv2d(1, c, 4, 2, 1), tnn.LeakyReLU(0.2), tnn.Conv2d(c, 2 * c, 4, 2, 1),
                        tnn.BatchNorm2d(2 * c), tnn.LeakyReLU(0.2), tnn.Flatten(), tnn.Linear(2 * c * 49, 1)).double()
    state = lambda m, drop: {k.replace(drop, ""): torch.tensor(v.numpy()) for k, v in m.state_dict().items()
                             if "num_batches" not in k}
    Gt.load_state_dict(state(G, "net."), strict=False)
    Dt.load_state_dict({**state(D.features, ""), "6.weight": torch.tensor(D.head.weight.numpy()),
                        "6.bias": torch.tensor(D.head.bias.numpy())}, strict=False)
    x, xt = G(mg.tensor(z)), Gt(torch.tensor(z))
    np.testing.assert_allclose(x.numpy(), xt.detach().numpy(), rtol=1e-9, atol=1e-12)
    s, st_ = D(x), Dt(xt)
    np.testing.assert_allclose(s.numpy(), st_.detach().numpy(), rtol=1e-9, atol=1e-12)
    s.sum().backward()
    st_.sum().backward()
    for p, pt in zip(list(G.parameters()) + list(D.parameters()), list(Gt.parameters()) + list(Dt.parameters())):
        np.testing.assert_allclose(p.grad.numpy(), pt.grad.numpy(), rtol=1e-7, atol=1e-12)
