"""Every model family, a training step and a checkpoint on each device give the CPU's result, on that device.

On a plain run `device` is "cpu" (and "cuda" with a GPU); under MINIGRAD_TEST_DEVICE=sim it is the strict
simulated GPU, which raises on any implicit host transfer, host/device mix or array on the wrong device.
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad import backend, nn, optim
from minigrad.models.attention import (LearnedPositionEmbedding, TransformerEncoder, TransformerEncoderLayer,
                              scaled_dot_product_attention)
from minigrad.models.capsule import Capsule, capsule_lengths, capsule_margin_loss, squash
from minigrad.models.crf import CRF, viterbi_decode
from minigrad.models.gan import (DCGANDiscriminator, DCGANGenerator, cascading_rejection, discriminator_loss,
                        generator_loss, r1_penalty)
from minigrad.models.margin import MarginHead, contrastive_loss, triplet_loss
from minigrad.models.vae import VAE, cluster_kl_terms, gaussian_kl


def _x(*shape, seed=0, dtype="float64"):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(dtype)


# Each case: (host arrays, fn(tensors, device) -> scalar loss). fn builds nothing on the host by itself.
FUNCTIONS = {
    "attention": ([_x(2, 3, 4), _x(2, 5, 4), _x(2, 5, 4)],
                  lambda q, k, v, device: scaled_dot_product_attention(q, k, v, causal=False).sum()),
    "attention_masked": ([_x(2, 4, 4), _x(2, 4, 4), _x(2, 4, 4)],
                         lambda q, k, v, device: scaled_dot_product_attention(q, k, v, causal=True).sum()),
    "squash": ([_x(2, 3, 4)], lambda x, device: squash(x).sum()),
    "capsule_margin": ([_x(4, 3, 5)], lambda u, device: capsule_margin_loss(
        capsule_lengths(squash(u)), mg.tensor([0, 2, 1, 0], device=device))),
    "crf": ([_x(2, 4, 3), _x(3, 3)], None),  # module case below
    "gan_losses": ([_x(6), _x(6)], lambda r, f, device: discriminator_loss(r, f) + generator_loss(f)),
    "cascading_rejection": ([_x(3, 4), _x(2, 4)], lambda v, w, device: cascading_rejection(v, w).sum()),
    "triplet": ([_x(3, 4), _x(3, 4, seed=1), _x(3, 4, seed=2)], lambda a, p, n, device: triplet_loss(a, p, n)),
    "contrastive": ([_x(3, 4), _x(3, 4, seed=1)],
                    lambda a, b, device: contrastive_loss(a, b, mg.tensor([1, 0, 1], device=device))),
    "gaussian_kl": ([_x(3, 2), _x(3, 2, seed=1)], lambda mu, lv, device: gaussian_kl(mu, lv).sum()),
    "cluster_kl": ([_x(3, 2), _x(3, 2, seed=1), _x(4, 2), _x(3, 4)],
                   lambda z, lv, m, lg, device: sum(t.sum() for t in cluster_kl_terms(z, lv, m, lg))),
}
FUNCTIONS.pop("crf")


def _run(arrays, fn, device):
    xs = [mg.tensor(a, device=device, requires_grad=True) for a in arrays]
    loss = fn(*xs, device).sum()
    loss.backward()
    return loss, xs


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_model_functions_match_the_cpu(name, device):
    arrays, fn = FUNCTIONS[name]
    ref, ref_xs = _run(arrays, fn, "cpu")
    out, xs = _run(arrays, fn, device)
    assert out.device == xs[0].device and all(x.grad.device == x.device for x in xs)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6, atol=1e-9)
    for x, r in zip(xs, ref_xs):
        np.testing.assert_allclose(x.grad.numpy(), r.grad.numpy(), rtol=1e-6, atol=1e-9)


def _same_start(make, device):
    """The model made on the CPU and a copy of it moved to ``device``."""
    mg.manual_seed(0)
    a = make()
    mg.manual_seed(0)
    return a, make().to(device)


def _grads(m):
    return {n: p.grad.numpy() for n, p in m.named_parameters() if p.grad is not None}


MODULES = {
    "transformer": (lambda: TransformerEncoder(lambda: TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                                                              batch_first=True), 2),
                    lambda m, x, d: m(x).sum(), (2, 5, 8), "float32"),
    "capsule": (lambda: Capsule(3, 2, 4, 5), lambda m, x, d: capsule_lengths(m(x)).sum(), (2, 3, 4), "float32"),
    "crf": (lambda: CRF(3), lambda m, x, d: m.nll(x, mg.tensor([[0, 1, 2, 1], [2, 2, 0, 1]], device=d)).sum(),
            (2, 4, 3), "float32"),
    "dcgan": (lambda: DCGANDiscriminator(channels=4, image_size=8),
              lambda m, x, d: discriminator_loss(m(x), m(x * 0.5)) + r1_penalty(m, x), (2, 1, 8, 8), "float32"),
    "vae": (lambda: VAE(in_shape=(1, 4, 4), latent_dim=2, hidden=8),
            lambda m, x, d: m.reconstruction_loss(x.sigmoid(), m.decode(m.encode(x.sigmoid())[0])),
            (3, 1, 4, 4), "float32"),
    "margin_head": (lambda: MarginHead(4, 3, loss="am"), lambda m, x, d: m(x, mg.tensor([0, 2, 1], device=d)),
                    (3, 4), "float32"),
    "gru": (lambda: nn.GRU(3, 4, num_layers=2, batch_first=True), lambda m, x, d: m(x)[0].sum(), (2, 5, 3),
            "float32"),
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_models_train_on_the_device_as_on_the_cpu(name, device):
    make, loss_fn, shape, dtype = MODULES[name]
    ref, m = _same_start(make, device)
    x = _x(*shape, dtype=dtype)
    for model, dev in ((ref, "cpu"), (m, device)):
        opt = optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(2):
            opt.zero_grad()
            loss = loss_fn(model, mg.tensor(x, device=dev), dev).sum()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    dev = mg.tensor(0.0, device=device).device
    assert loss.device == dev and {p.device for p in m.parameters()} == {dev}
    for (n, p), (_, q) in zip(ref.named_parameters(), m.named_parameters()):
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-4, atol=1e-6, err_msg=n)


def test_decoding_and_sampling_stay_on_the_device(device):
    e, g = (mg.tensor(a, device=device) for a in (_x(2, 4, 3), _x(3, 3)))
    paths, scores = viterbi_decode(e, g)
    ref_paths, ref_scores = viterbi_decode(mg.tensor(_x(2, 4, 3)), mg.tensor(_x(3, 3)))
    assert paths.device == e.device and scores.device == e.device
    np.testing.assert_array_equal(paths.numpy(), ref_paths.numpy())
    mg.manual_seed(0)
    gen = DCGANGenerator(latent_dim=4, channels=4, image_size=8).to(device)
    out = gen(mg.randn(2, 4, device=device))
    assert out.device == e.device and np.isfinite(out.numpy()).all()


def test_checkpoints_load_onto_the_device(device, tmp_path):
    mg.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).to(device)
    opt = optim.Adam(m.parameters(), lr=0.1)
    ema = optim.EMA(m, decay=0.5)
    for _ in range(2):
        opt.zero_grad()
        (m(mg.tensor(_x(5, 4, dtype="float32"), device=device)) ** 2).sum().backward()
        opt.step()
        ema.update()
    mg.save({"model": m.state_dict(), "opt": opt.state_dict(), "ema": ema.state_dict()}, tmp_path / "c.mgz")
    ck = mg.load(tmp_path / "c.mgz", device=device)
    dev = m[0].weight.device
    assert {backend.device_of(a.data if isinstance(a, mg.Tensor) else a) for a in ck["model"].values()} == {dev}
    mg.manual_seed(1)
    m2 = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).to(device)
    m2.load_state_dict(ck["model"])
    opt2 = optim.Adam(m2.parameters(), lr=0.1)
    opt2.load_state_dict(ck["opt"])
    ema2 = optim.EMA(m2, decay=0.5)
    ema2.load_state_dict(ck["ema"])
    x = mg.tensor(_x(5, 4, seed=3, dtype="float32"), device=device)
    for model, o, e in ((m, opt, ema), (m2, opt2, ema2)):
        o.zero_grad()
        (model(x) ** 2).sum().backward()
        o.step()
        e.update()
    for (n, p), (_, q) in zip(m.named_parameters(), m2.named_parameters()):
        assert q.device == dev
        np.testing.assert_array_equal(q.numpy(), p.numpy(), err_msg=n)
    for k in ema.shadow:
        assert backend.device_of(ema2.shadow[k]) == dev
        np.testing.assert_array_equal(backend.to_numpy(ema2.shadow[k]), backend.to_numpy(ema.shadow[k]))


def test_layers_made_with_device_live_there(device):
    dev = mg.tensor(0.0, device=device).device
    made = [nn.Linear(3, 2, device=device), nn.Conv2d(1, 2, 3, device=device), nn.Embedding(4, 3, device=device),
            nn.LayerNorm(3, device=device), nn.BatchNorm1d(3, device=device), nn.GRU(3, 4, device=device),
            nn.LSTM(3, 4, device=device), TransformerEncoderLayer(4, 2, 8, device=device), CRF(3, device=device),
            nn.Embedding(4, 3, padding_idx=0, device=device), LearnedPositionEmbedding(5, 4, device=device),
            Capsule(2, 2, 3, 4, device=device), MarginHead(3, 4, device=device)]
    for m in made:
        where = {t.device for t in list(m.parameters()) + [b for _, b in m.named_buffers() if b is not None]}
        assert where == {dev}, f"{type(m).__name__}: {where}"
