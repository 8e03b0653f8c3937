"""Optimizers: hand-computed steps, PyTorch parity over several steps, param groups, state_dict, clipping."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad.testing import torch_or_skip
from minigrad import nn, optim
from minigrad.nn.utils import clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters

SHAPES = [(3, 2), (4,), ()]

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.2)),
]


def _arrays(seed, n_steps, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(n_steps)]
    return params, grads


def _run(opt_cls, kw, params, grads, dtype=None):
    ps = [nn.Parameter(mg.tensor(p, dtype=dtype or p.dtype)) for p in params]
    opt = opt_cls(ps, **kw)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = mg.tensor(g, dtype=p.dtype)
        opt.step()
    return ps, opt


@pytest.mark.parametrize("name,kw", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_matches_torch_over_several_steps(name, kw):
    torch = torch_or_skip()
    params, grads = _arrays(0, 6)
    ps, _ = _run(getattr(optim, name), kw, params, grads)
    tps = [torch.tensor(p, requires_grad=True) for p in params]
    topt = getattr(torch.optim, name)(tps, **kw)
    for gs in grads:
        for p, g in zip(tps, gs):
            p.grad = torch.tensor(g)
        topt.step()
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_hand_computed_first_steps():
    p0, g = np.array([1.0, -2.0]), np.array([0.5, -0.1])

    def one(cls, steps=1, **kw):
        ps, _ = _run(cls, kw, [p0], [[g]] * steps)
        return ps[0].numpy()

    np.testing.assert_allclose(one(optim.SGD, lr=0.1), p0 - 0.1 * g)
    # momentum: b1 = g, b2 = 0.9 g + g  ->  p - 0.1 g - 0.1 * 1.9 g
    np.testing.assert_allclose(one(optim.SGD, 2, lr=0.1, momentum=0.9), p0 - 0.1 * g - 0.19 * g)
    # nesterov first step: g + 0.9 g
    np.testing.assert_allclose(one(optim.SGD, lr=0.1, momentum=0.9, nesterov=True), p0 - 0.1 * 1.9 * g)
    # Adam, first step: m̂ = g, v̂ = g², so the step is lr·g/(|g| + eps)
    np.testing.assert_allclose(one(optim.Adam, lr=0.01), p0 - 0.01 * g / (np.abs(g) + 1e-8))
    # AdamW: decay θ by (1 − lr·λ) first
    np.testing.assert_allclose(one(optim.AdamW, lr=0.01, weight_decay=0.5),
                               p0 * (1 - 0.005) - 0.01 * g / (np.abs(g) + 1e-8))
    # RMSprop: s = 0.01 g², step lr·g/(√s + eps) = lr·sign(g)/0.1
    np.testing.assert_allclose(one(optim.RMSprop, lr=0.01), p0 - 0.01 * g / (np.sqrt(0.01 * g * g) + 1e-8))
    # Adagrad, two steps: s = g², then 2g²; the second rate is lr/(1 + lr_decay)
    step1 = p0 - 0.1 * g / (np.abs(g) + 1e-10)
    np.testing.assert_allclose(one(optim.Adagrad, 2, lr=0.1, lr_decay=0.5),
                               step1 - 0.1 / 1.5 * g / (np.sqrt(2) * np.abs(g) + 1e-10))


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_float32_stays_float32(name):
    kw = {"lr": 0.1, "momentum": 0.9} if name in ("SGD", "RMSprop") else {"lr": 0.1}
    params, grads = _arrays(1, 2, np.float32)
    ps, opt = _run(getattr(optim, name), kw, params, grads)
    assert all(p.dtype == np.float32 for p in ps)
    for s in opt.state.values():
        assert all(v.dtype == np.float32 for v in s.values() if hasattr(v, "dtype"))


def test_param_groups_and_missing_grads():
    a, b, c = (nn.Parameter(mg.ones(2)) for _ in range(3))
    opt = optim.SGD([{"params": [a]}, {"params": [b, c], "lr": 1.0}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    a.grad, b.grad = mg.ones(2), mg.ones(2)
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.9)
    np.testing.assert_allclose(b.numpy(), 0.0)
    np.testing.assert_allclose(c.numpy(), 1.0)  # no grad: untouched
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.numpy(), 0.0)
    assert c.grad is None
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    adam = optim.Adam([a, b])
    a.grad = mg.ones(2)
    adam.step()
    assert list(adam.state) == [a]


def test_gradient_shared_or_broadcast_is_never_written():
    a, b = nn.Parameter(mg.ones(3)), nn.Parameter(mg.ones(3))
    (a + b).sum().backward()  # a.grad may be the very Tensor b.grad is, and a read-only broadcast view
    ga = a.grad.numpy().copy()
    opt = optim.SGD([a, b], lr=0.5, momentum=0.9, weight_decay=0.1)
    opt.step()
    opt.step()
    np.testing.assert_array_equal(a.grad.numpy(), ga)
    np.testing.assert_allclose(a.numpy(), b.numpy())
    for cls in (optim.Adam, optim.RMSprop, optim.Adagrad):
        cls([a, b]).step()
    np.testing.assert_array_equal(b.grad.numpy(), ga)


def test_closure_is_evaluated_with_grad():
    w = nn.Parameter(mg.tensor([3.0]))
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with mg.no_grad():
        loss = opt.step(closure)
    assert float(loss.item()) == 9.0
    np.testing.assert_allclose(w.numpy(), [1.5])


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01, amsgrad=True)),
                                     ("AdamW", dict(lr=0.01)), ("RMSprop", dict(lr=0.01, centered=True,
                                                                                momentum=0.5)),
                                     ("Adagrad", dict(lr=0.1, lr_decay=0.1))])
def test_state_dict_round_trip_continues_identically(name, kw, tmp_path):
    params, grads = _arrays(2, 6, np.float32)
    cls = getattr(optim, name)
    ps, opt = _run(cls, kw, params, grads[:3])
    snapshot = [p.numpy().copy() for p in ps]
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2] and sd["param_groups"][0]["params"] == [0, 1, 2]
    for gs in grads[3:]:
        for p, g in zip(ps, gs):
            p.grad = mg.tensor(g)
        opt.step()
    try:  # through the file format when it is available
        import minigrad.io  # noqa: F401
        mg.save(sd, tmp_path / "opt.mg")
        sd = mg.load(tmp_path / "opt.mg")
    except (ImportError, AttributeError):
        pass
    ps2, opt2 = _run(cls, {**kw, "lr": 123.0}, snapshot, [])
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == kw["lr"]
    for gs in grads[3:]:
        for p, g in zip(ps2, gs):
            p.grad = mg.tensor(g)
        opt2.step()
    for p, q in zip(ps, ps2):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_state_dict_is_a_snapshot_and_accepts_string_keys():
    params, grads = _arrays(3, 2)
    ps, opt = _run(optim.Adam, {}, params, grads[:1])
    sd = opt.state_dict()
    before = sd["state"][0]["exp_avg"].copy()
    for p, g in zip(ps, grads[1]):
        p.grad = mg.tensor(g)
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], before)
    sd["state"] = {str(k): v for k, v in sd["state"].items()}
    opt.load_state_dict(sd)
    np.testing.assert_array_equal(opt.state[ps[0]]["exp_avg"], before)
    with pytest.raises(ValueError, match="param groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})


def test_bad_arguments_are_named():
    p = nn.Parameter(mg.ones(2))
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match=r"AdamW: betas must be a pair"):
        optim.AdamW([p], betas=(0.9,))
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(ValueError, match="more than one group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        optim.SGD([{"params": [p], "momentun": 0.9}], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p, lr=0.1)


def test_training_a_tiny_model_reduces_the_loss():
    mg.manual_seed(0)
    m = nn.GRU(2, 8, batch_first=True)
    head = nn.Parameter(mg.randn(8, 1) * 0.3)
    x = mg.randn(16, 5, 2)
    y = x.sum(axis=(1, 2)).reshape(16, 1) * 0.2
    opt = optim.Adam(list(m.parameters()) + [head], lr=0.03)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = ((m(x)[1][0] @ head - y) ** 2).mean()
        loss.backward()
        clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


# ---- gradient clipping and flat vectors --------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ps = [nn.Parameter(mg.zeros(*s)) for s in SHAPES]
    tps = [torch.zeros(s, requires_grad=True) for s in SHAPES]
    for p, tp, g in zip(ps, tps, grads):
        p.grad, tp.grad = mg.tensor(g), torch.tensor(g)
    total = clip_grad_norm_(ps, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    assert total.dtype == np.float32
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-6)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_clip_grad_norm_by_hand_and_with_shared_gradients():
    a, b = nn.Parameter(mg.ones(2)), nn.Parameter(mg.ones(2))
    (3 * a + 3 * b).sum().backward()  # grads (3, 3) each: total norm 6
    total = clip_grad_norm_([a, b], 3.0)
    np.testing.assert_allclose(total.item(), 6.0)
    np.testing.assert_allclose(a.grad.numpy(), 1.5, rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), 1.5, rtol=1e-5)
    c = nn.Parameter(mg.ones(2))
    c.grad = mg.tensor([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="norm"):
        clip_grad_norm_([c], 1.0, error_if_nonfinite=True)
    assert clip_grad_norm_([nn.Parameter(mg.ones(1))], 1.0).item() == 0.0  # no gradients
    before = a.grad
    assert clip_grad_norm_([a, b], 10.0).item() == pytest.approx(3.0, rel=1e-5)  # the clipped (1.5, 1.5) x 2
    assert a.grad is before  # under max_norm: gradients untouched
    c.grad = mg.tensor([np.nan, 1.0])
    clip_grad_norm_([c], 1.0)
    assert np.isnan(c.grad.numpy()).all()  # a NaN norm spreads to every gradient, as in PyTorch


def test_clip_grad_value_and_flat_vectors():
    a, b = nn.Parameter(mg.zeros(2, 2)), nn.Parameter(mg.zeros(3))
    a.grad, b.grad = mg.tensor([[3.0, -0.5], [-4.0, 0.1]]), mg.tensor([1.0, 2.0, -2.0])
    clip_grad_value_([a, b], 1.0)
    np.testing.assert_allclose(a.grad.numpy(), [[1.0, -0.5], [-1.0, 0.1]])
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 1.0, -1.0])
    vector_to_parameters(mg.arange(7, dtype="float32"), [a, b])
    np.testing.assert_array_equal(a.numpy(), [[0, 1], [2, 3]])
    v = parameters_to_vector([a, b])
    np.testing.assert_array_equal(v.numpy(), np.arange(7))
    a.grad = b.grad = None
    (v * v).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), [8, 10, 12])
    with pytest.raises(ValueError, match="7 elements"):
        vector_to_parameters(mg.zeros(6), [a, b])


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_column_major_gradients_give_the_same_steps(name):
    g = np.random.default_rng(5).standard_normal((4, 3)).astype(np.float32)
    a, b = nn.Parameter(mg.ones(3, 4)), nn.Parameter(mg.ones(3, 4))
    a.grad, b.grad = mg.Tensor(np.ascontiguousarray(g.T)), mg.Tensor(g.T)  # b's is a transposed view
    opt = getattr(optim, name)([a, b], lr=0.1)
    opt.step()
    opt.step()
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert b.numpy().flags.c_contiguous


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_every_device_gives_the_cpu_result(name, device):
    params, grads = _arrays(6, 3, np.float32)
    kw = {"lr": 0.1, "momentum": 0.5} if name in ("SGD", "RMSprop") else {"lr": 0.1}
    ps_cpu, _ = _run(getattr(optim, name), kw, params, grads)
    ps = [nn.Parameter(mg.tensor(p, device=device)) for p in params]
    opt = getattr(optim, name)(ps, **kw)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = mg.tensor(g, device=device)
        opt.step()
    for p, q in zip(ps, ps_cpu):
        assert p.device == mg.tensor(0.0, device=device).device
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-6)
    total = clip_grad_norm_(ps, 0.1)
    assert total.device == ps[0].device
