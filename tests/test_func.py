"""minigrad.func: forward mode and the function transforms, against finite differences, against each other and
(when PyTorch is installed) against torch.func in float64 at 1e-9."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.func import grad, grad_and_value, hessian, hvp, jacfwd, jacrev, jvp, vjp
from minigrad.testing import check_jvp_fn

TOL = dict(rtol=1e-9, atol=1e-9)


def _t(rng, *shape):
    return mg.tensor(rng.standard_normal(shape))


def _close(a, b, **tol):
    """Equal nested structures of minigrad and torch (or minigrad) tensors."""
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b), f"structure {type(a)}/{len(a)} vs {b!r:.60}"
        for x, y in zip(a, b):
            _close(x, y, **tol)
        return
    assert isinstance(a, mg.Tensor), f"expected a Tensor, got {type(a).__name__}"
    bn = b.detach().numpy() if hasattr(b, "detach") else b.numpy()
    assert a.shape == tuple(bn.shape), f"shape {a.shape} vs {tuple(bn.shape)}"
    np.testing.assert_allclose(a.numpy(), bn, **(tol or TOL))


# ---- forward mode of the layers' ops (conv, pooling): jvp, transpose identity, forward over reverse ------------
CONV_CASES = [
    dict(stride=1, padding=0), dict(stride=2, padding=1), dict(stride=1, padding=2, dilation=2),
    dict(stride=(2, 1), padding=(1, 0), groups=2),
]


@pytest.mark.parametrize("kw", CONV_CASES, ids=str)
def test_conv2d_jvp(kw):
    rng = np.random.default_rng(0)
    x, w, b = _t(rng, 2, 4, 6, 5), _t(rng, 4, 4 // kw.get("groups", 1), 3, 3), _t(rng, 4)
    check_jvp_fn(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b], name=f"conv2d {kw}")


def test_conv_transpose2d_and_conv1d_jvp():
    rng = np.random.default_rng(1)
    check_jvp_fn(lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
                 [_t(rng, 2, 3, 4, 4), _t(rng, 3, 2, 3, 3)], name="conv_transpose2d")
    check_jvp_fn(lambda x, w: F.conv1d(x, w, padding=1), [_t(rng, 2, 3, 7), _t(rng, 4, 3, 3)], name="conv1d")


@pytest.mark.parametrize("pool", ["max", "max_overlap", "avg", "avg_ceil", "adaptive", "unpool"])
def test_pooling_jvp(pool):
    rng = np.random.default_rng(2)
    x = mg.tensor(rng.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7) * 0.1)  # distinct values: no ties
    f = {"max": lambda x: F.max_pool2d(x, 2),
         "max_overlap": lambda x: F.max_pool2d(x, 3, stride=2, padding=1),
         "avg": lambda x: F.avg_pool2d(x, 3, stride=2, padding=1),
         "avg_ceil": lambda x: F.avg_pool2d(x, 2, ceil_mode=True, count_include_pad=False),
         "adaptive": lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
         "unpool": lambda x: F.max_unpool2d(*F.max_pool2d(x, 2, return_indices=True), 2, output_size=x.shape)}[pool]
    check_jvp_fn(f, [x], name=pool)


# ---- transforms on their own ---------------------------------------------------------------------------------
def test_compositions_agree_on_the_hessian():
    rng = np.random.default_rng(3)
    x, a = _t(rng, 4), _t(rng, 4, 4)
    f = lambda x: (mg.tanh(a @ x) * mg.sin(x)).sum() + mg.logsumexp(x * x)
    hs = [jacfwd(jacrev(f))(x), jacrev(jacrev(f))(x), jacrev(jacfwd(f))(x), jacfwd(jacfwd(f))(x), hessian(f)(x)]
    for h in hs[1:]:
        _close(h, hs[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hs[0].numpy(), hs[0].numpy().T, atol=1e-12)
    v = _t(rng, 4)
    _close(hvp(f, x, v)[1], mg.tensor(hs[0].numpy() @ v.numpy()), rtol=1e-10, atol=1e-12)
    x0 = mg.tensor(0.7, dtype="float64")
    g3 = grad(grad(grad(lambda t: mg.sin(t) * t)))(x0)  # d³/dt³ (t sin t) = −3 sin t − t cos t
    assert abs(g3.item() - (-3 * np.sin(0.7) - 0.7 * np.cos(0.7))) < 1e-12


def test_jvp_matches_jacobian_and_transpose():
    rng = np.random.default_rng(4)
    x, v, u = _t(rng, 3, 2), _t(rng, 3, 2), _t(rng, 2, 3)
    f = lambda x: mg.softmax(x.T * 2.0, axis=-1) * mg.exp(x.T)
    J = jacrev(f)(x).numpy().reshape(6, 6)
    _close(jvp(f, (x,), (v,))[1], mg.tensor((J @ v.numpy().ravel()).reshape(2, 3)))
    _close(vjp(f, x)[1](u)[0], mg.tensor((u.numpy().ravel() @ J).reshape(3, 2)))
    _close(jacfwd(f)(x), jacrev(f)(x))


def test_no_grad_as_in_pytorch():
    x = mg.tensor([0.5, -1.0, 2.0], dtype="float64")
    with mg.no_grad():
        g = grad(lambda t: (t * t * t).sum())(x)  # a transform computes gradients inside no_grad
        _, t = jvp(lambda t: mg.exp(t).sum(), (x,), (mg.ones_like(x),))
    _close(g, mg.tensor(3 * x.numpy() ** 2))
    assert abs(t.item() - np.exp(x.numpy()).sum()) < 1e-12

    def f(t):
        with mg.no_grad():
            c = t * 2.0
        return (c * t).sum()
    _close(grad(f)(x), mg.tensor(2 * x.numpy()))  # c is a constant for reverse mode
    assert abs(jvp(f, (x,), (mg.ones_like(x),))[1].item() - (4 * x.numpy()).sum()) < 1e-12  # forward mode: not
    _close(grad(lambda t: (t.detach() * t.detach()).sum())(x), mg.zeros_like(x))


def test_a_function_with_only_forward_and_jvp_works_in_forward_mode():
    class Cube(mg.Function):
        def forward(self, x):
            return x ** 3

        def jvp(self, tx):
            return 3 * self.inputs[0] * self.inputs[0] * tx

    x = mg.tensor([1.0, -2.0], dtype="float64")
    _close(jvp(lambda t: Cube()(t), (x,), (mg.ones_like(x),))[1], mg.tensor([3.0, 12.0], dtype="float64"))
    _close(jacfwd(lambda t: Cube()(t))(x), mg.tensor(np.diag([3.0, 12.0])))
    _close(jacfwd(jacfwd(lambda t: Cube()(t).sum()))(x), mg.tensor(np.diag([6.0, -12.0])))
    with pytest.raises(NotImplementedError, match="Cube.backward"):
        jacrev(lambda t: Cube()(t))(x)
    with pytest.raises(NotImplementedError, match=r"Relu6 has no forward-mode rule \(jvp\)"):
        class Relu6(mg.Function):
            def forward(self, x):
                return x.clip(0, 6)
        jvp(lambda t: Relu6()(t), (x,), (x,))


def test_bad_input_gets_a_clear_error():
    x = mg.tensor([1.0, 2.0], dtype="float64")
    with pytest.raises(TypeError, match="jvp: primals must be a tuple"):
        jvp(mg.sin, x, (x,))
    with pytest.raises(TypeError, match="jvp: tangents must be a tuple"):
        jvp(mg.sin, (x,), x)
    with pytest.raises(ValueError, match=r"tangents\[0\] has shape \(3,\).*primals\[0\] has shape \(2,\)"):
        jvp(mg.sin, (x,), (mg.tensor([1.0, 2.0, 3.0], dtype="float64"),))
    with pytest.raises(ValueError, match=r"tangents\[0\].*float32.*primals\[0\].*float64"):
        jvp(mg.sin, (x,), (mg.tensor([1.0, 2.0], dtype="float32"),))
    with pytest.raises(TypeError, match="jvp: f must return a Tensor or a tuple of Tensors, got float"):
        jvp(lambda t: 3.0, (x,), (x,))
    with pytest.raises(TypeError, match="vjp: f must return a Tensor"):
        vjp(lambda t: [t.numpy()], x)
    with pytest.raises(RuntimeError, match=r"grad: f must return a scalar Tensor.*shape \(2,\)"):
        grad(mg.sin)(x)
    with pytest.raises(TypeError, match=r"grad: primals\[0\] must be a Tensor, got float"):
        grad(mg.sin)(1.0)
    with pytest.raises(ValueError, match="jacrev: argnums 2 out of range"):
        jacrev(mg.sin, argnums=2)(x)
    with pytest.raises(NotImplementedError, match="GRUStep is a fused op without a forward-mode rule"):
        gru = mg.nn.GRU(2, 3)
        jvp(lambda t: gru(t)[0].sum(), (mg.ones(1, 1, 2),), (mg.ones(1, 1, 2),))


# ---- fused model ops in forward mode ---------------------------------------------------------------------------
def test_fused_jvps_match_their_composed_versions():
    from minigrad.models.attention import attention_composed, scaled_dot_product_attention
    from minigrad.models.capsule import squash, squash_composed
    from minigrad.models.crf import crf_log_partition, crf_log_partition_composed
    rng = np.random.default_rng(5)
    q, k, v = _t(rng, 2, 3, 4), _t(rng, 1, 5, 4), _t(rng, 2, 5, 3)
    ts = (_t(rng, 2, 3, 4), _t(rng, 1, 5, 4), _t(rng, 2, 5, 3))
    mask = rng.random((3, 5)) > 0.4
    mask[1] = False  # a query that may attend nowhere
    for kw in (dict(), dict(mask=mask), dict(causal=True), dict(dropout_p=0.3)):
        for recompute in (False, True):
            mg.manual_seed(7)
            a = jvp(lambda *z: scaled_dot_product_attention(*z, recompute=recompute, **kw), (q, k, v), ts)
            mg.manual_seed(7)
            b = jvp(lambda *z: attention_composed(*z, **kw), (q, k, v), ts)
            _close(a, b, rtol=1e-12, atol=1e-12)
    h, g, s, e = _t(rng, 3, 6, 4), _t(rng, 4, 4), _t(rng, 4), _t(rng, 4)
    g.data[0, 2] = -np.inf  # a forbidden transition
    tans = (_t(rng, 3, 6, 4), _t(rng, 4, 4), _t(rng, 4), _t(rng, 4))
    m = np.ones((3, 6), bool)
    m[1, 4:], m[2, 1:] = False, False
    fused = lambda h, g, s, e: crf_log_partition(h, g, m, s, e)
    composed = lambda h, g, s, e: crf_log_partition_composed(h, g, m, s, e)
    _close(jvp(fused, (h, g, s, e), tans), jvp(composed, (h, g, s, e), tans), rtol=1e-12, atol=1e-12)
    x, tx = _t(rng, 3, 5), _t(rng, 3, 5)
    x.data[1] = 0.0  # squash at the origin
    _close(jvp(lambda t: squash(t, c=0.5), (x,), (tx,)), jvp(lambda t: squash_composed(t, c=0.5), (x,), (tx,)),
           rtol=1e-12, atol=1e-12)


def test_fused_ops_refuse_what_their_raw_array_rules_cannot_do():
    from minigrad.models.capsule import squash
    x, tx = mg.tensor(np.ones((2, 3))), mg.tensor(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="Squash.jvp works on raw arrays: reverse mode"):
        jacrev(lambda t: jvp(squash, (t,), (tx,))[1])(x)
    with pytest.raises(RuntimeError, match="Squash.jvp works on raw arrays: an outer forward level"):
        jacfwd(jacfwd(lambda t: squash(t).sum()))(x)
    with pytest.raises(RuntimeError, match="Squash is a fused op whose backward works on raw arrays"):
        hessian(lambda t: squash(t).sum())(x)


def test_alias_and_raw_tangent_by_name():
    """Alias: the identity as a graph node, in both modes. RawTangent: a raw-array tangent that refuses to be
    differentiated, by either mode, naming the op."""
    from minigrad.forward_ad import Alias, RawTangent, dual_level, make_dual, unpack_dual
    x = mg.tensor(np.array([1.0, -2.0]), requires_grad=True)
    y = Alias()(x)
    assert y is not x and np.array_equal(y.numpy(), x.numpy())
    assert mg.gradcheck(lambda t: Alias()(t) * t, [x])
    (y * 3.0).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]
    with dual_level() as k:
        assert unpack_dual(Alias()(make_dual(x, mg.tensor([0.5, 2.0]), k)), k).tolist() == [0.5, 2.0]
    r = RawTangent(np.array([7.0, 8.0]), "SomeOp")(x)
    assert r.tolist() == [7.0, 8.0]
    with pytest.raises(RuntimeError, match="SomeOp.jvp works on raw arrays: reverse mode"):
        r.sum().backward()
    with dual_level() as k:
        d = make_dual(x, mg.tensor([1.0, 1.0]), k)
        with pytest.raises(RuntimeError, match="SomeOp.jvp works on raw arrays: an outer forward level"):
            RawTangent(np.array([7.0, 8.0]), "SomeOp")(d)


# ---- against torch.func ----------------------------------------------------------------------------------------
N, D = 3, 4
TARGET = np.array([1, 3, 0])

# name: (minigrad step, torch step); each maps the state h (N, D) and the parameters (W (D, D), b (D,)) to (N, D)
STEPS = {
    "sin": (lambda h, W, b: mg.sin(h), lambda h, W, b: h.sin()),
    "cos": (lambda h, W, b: mg.cos(h), lambda h, W, b: h.cos()),
    "tanh": (lambda h, W, b: mg.tanh(h), lambda h, W, b: h.tanh()),
    "sigmoid": (lambda h, W, b: mg.sigmoid(h), lambda h, W, b: h.sigmoid()),
    "exp": (lambda h, W, b: mg.exp(h * 0.3), lambda h, W, b: (h * 0.3).exp()),
    "log": (lambda h, W, b: mg.log(h * h + 1.0), lambda h, W, b: (h * h + 1.0).log()),
    "sqrt": (lambda h, W, b: mg.sqrt(h * h + 0.5), lambda h, W, b: (h * h + 0.5).sqrt()),
    "softplus": (lambda h, W, b: F.softplus(h), lambda h, W, b: _tF().softplus(h)),
    "gelu": (lambda h, W, b: F.gelu(h), lambda h, W, b: _tF().gelu(h)),
    "elu": (lambda h, W, b: F.elu(h), lambda h, W, b: _tF().elu(h)),
    "relu_abs": (lambda h, W, b: F.relu(h) + abs(h) * 0.5, lambda h, W, b: _tF().relu(h) + h.abs() * 0.5),
    "pow": (lambda h, W, b: (h * h + 1.0) ** (b * 0.2), lambda h, W, b: (h * h + 1.0) ** (b * 0.2)),
    "mul_div": (lambda h, W, b: h * b / (b * b + 1.0), lambda h, W, b: h * b / (b * b + 1.0)),
    "add_sub": (lambda h, W, b: h + b - 0.5 * b * h, lambda h, W, b: h + b - 0.5 * b * h),
    "maximum": (lambda h, W, b: mg.maximum(h, b * 0.5), lambda h, W, b: _torch().maximum(h, b * 0.5)),
    "matmul": (lambda h, W, b: h @ W * 0.5, lambda h, W, b: h @ W * 0.5),
    "linear": (lambda h, W, b: F.linear(h, W, b), lambda h, W, b: _tF().linear(h, W, b)),
    "einsum": (lambda h, W, b: mg.einsum("ij,kj->ik", h, W), lambda h, W, b: _torch().einsum("ij,kj->ik", h, W)),
    "transpose": (lambda h, W, b: (h.T * b[:N]).T, lambda h, W, b: (h.T * b[:N]).T),
    "reshape": (lambda h, W, b: mg.sin(h.reshape(-1)).reshape(N, D) + h,
                lambda h, W, b: h.reshape(-1).sin().reshape(N, D) + h),
    "getitem": (lambda h, W, b: h[np.array([2, 0, 1])] * h, lambda h, W, b: h[[2, 0, 1]] * h),
    "concat": (lambda h, W, b: mg.concatenate([h[:, 2:], h[:, :2] * 2.0], axis=1),
               lambda h, W, b: _torch().cat([h[:, 2:], h[:, :2] * 2.0], dim=1)),
    "pad": (lambda h, W, b: mg.pad(h, 1)[1:-1, :-2] + h, lambda h, W, b: _tF().pad(h, (1, 1, 1, 1))[1:-1, :-2] + h),
    "softmax": (lambda h, W, b: mg.softmax(h, axis=-1), lambda h, W, b: h.softmax(-1)),
    "log_softmax": (lambda h, W, b: mg.log_softmax(h, axis=0), lambda h, W, b: h.log_softmax(0)),
    "logsumexp": (lambda h, W, b: h - mg.logsumexp(h, axis=-1, keepdims=True),
                  lambda h, W, b: h - h.logsumexp(-1, keepdim=True)),
    # torch 2.13's native layer_norm has an asymmetric Hessian in its (weight, input) block (the second
    # derivative d(∂L/∂weight)/d(input) is wrong under torch.func.hessian), so torch applies the affine part itself
    "layer_norm": (lambda h, W, b: F.layer_norm(h, (D,), b, b * 0.5),
                   lambda h, W, b: _tF().layer_norm(h, (D,)) * b + b * 0.5),
    "mean_var": (lambda h, W, b: (h - h.mean(axis=0, keepdims=True)) * mg.var(h, axis=1, keepdims=True),
                 lambda h, W, b: (h - h.mean(0, keepdim=True)) * h.var(1, keepdim=True, unbiased=False)),
    "norm_max": (lambda h, W, b: h / (mg.norm(h, axis=-1, keepdims=True) + 1.0) + mg.max(h, axis=0),
                 lambda h, W, b: h / (h.norm(dim=-1, keepdim=True) + 1.0) + h.amax(0)),
}
HEADS = {
    "sum": (lambda h: h.sum(), lambda h: h.sum()),
    "mse": (lambda h: F.mse_loss(h, mg.tensor(np.ones((N, D)) * 0.3)),
            lambda h: _tF().mse_loss(h, _torch().ones(N, D, dtype=_torch().float64) * 0.3)),
    "cross_entropy": (lambda h: F.cross_entropy(h, TARGET), lambda h: _tF().cross_entropy(h, _torch().tensor(TARGET))),
    "logsumexp": (lambda h: mg.logsumexp(h), lambda h: h.flatten().logsumexp(0)),
}


def _torch():
    import torch
    return torch


def _tF():
    import torch.nn.functional as tF
    return tF


def _programs(steps, head):
    def mg_f(x, W, b):
        h = x
        for s in steps:
            h = STEPS[s][0](h, W, b)
        return h if head is None else HEADS[head][0](h)

    def torch_f(x, W, b):
        h = x
        for s in steps:
            h = STEPS[s][1](h, W, b)
        return h if head is None else HEADS[head][1](h)
    return mg_f, torch_f


programs = st.tuples(st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=4),
                     st.sampled_from(sorted(HEADS)), st.integers(0, 2 ** 31))


@given(programs)
def test_random_programs_match_torch_func(program):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the torch.func comparison is skipped")
    from torch.autograd.functional import hvp as torch_hvp
    import torch.func as tf
    steps, head, seed = program
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in ((N, D), (D, D), (D,))]
    tangents = [rng.standard_normal(a.shape) for a in arrays]
    cot = rng.standard_normal((N, D))
    mx, mt, mc = [mg.tensor(a) for a in arrays], [mg.tensor(a) for a in tangents], mg.tensor(cot)
    tx, tt, tc = [torch.tensor(a) for a in arrays], [torch.tensor(a) for a in tangents], torch.tensor(cot)
    mg_f, torch_f = _programs(steps, head)
    mg_v, torch_v = _programs(steps, None)

    _close(grad(mg_f, argnums=(0, 1, 2))(*mx), tf.grad(torch_f, argnums=(0, 1, 2))(*tx))
    _close(grad_and_value(mg_f, argnums=1)(*mx), tf.grad_and_value(torch_f, argnums=1)(*tx))
    _close(jvp(mg_v, tuple(mx), tuple(mt)), tf.jvp(torch_v, tuple(tx), tuple(tt)))
    _close(vjp(mg_v, *mx)[1](mc), tf.vjp(torch_v, *tx)[1](tc))
    _close(jacrev(mg_v, argnums=(0, 2))(*mx), tf.jacrev(torch_v, argnums=(0, 2))(*tx))
    _close(jacfwd(mg_v, argnums=2)(*mx), tf.jacfwd(torch_v, argnums=2)(*tx))
    _close(hessian(mg_f)(*mx), tf.hessian(torch_f)(*tx))
    _close(hessian(mg_f, argnums=(0, 2))(*mx), tf.hessian(torch_f, argnums=(0, 2))(*tx))
    _close(hvp(mg_f, tuple(mx), tuple(mt)), torch_hvp(torch_f, tuple(tx), tuple(tt)))


@pytest.mark.parametrize("kw", [dict(stride=1, padding=1), dict(stride=2, padding=0, dilation=1, groups=2)], ids=str)
def test_conv_programs_match_torch_func(kw):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the torch.func comparison is skipped")
    from torch.autograd.functional import hvp as torch_hvp
    import torch.func as tf
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal(s) for s in ((2, 2, 5, 5), (4, 2 // kw.get("groups", 1), 3, 3), (4,))]
    tangents = [rng.standard_normal(a.shape) for a in arrays]
    mx, mt = tuple(mg.tensor(a) for a in arrays), tuple(mg.tensor(a) for a in tangents)
    tx, tt = tuple(torch.tensor(a) for a in arrays), tuple(torch.tensor(a) for a in tangents)
    y = np.arange(2) % 4

    def mg_f(x, w, b):
        h = mg.tanh(F.conv2d(x, w, b, **kw))
        h = F.layer_norm(h, h.shape[1:])
        return F.cross_entropy(F.max_pool2d(h, 2).mean(axis=(2, 3)), y) + (F.avg_pool2d(h, 2) ** 2).mean()

    def torch_f(x, w, b):
        h = torch.tanh(torch.nn.functional.conv2d(x, w, b, **kw))
        h = torch.nn.functional.layer_norm(h, h.shape[1:])
        return (torch.nn.functional.cross_entropy(torch.nn.functional.max_pool2d(h, 2).mean((2, 3)),
                                                  torch.tensor(y))
                + (torch.nn.functional.avg_pool2d(h, 2) ** 2).mean())

    _close(grad(mg_f, argnums=(0, 1, 2))(*mx), tf.grad(torch_f, argnums=(0, 1, 2))(*tx))
    _close(jvp(mg_f, mx, mt), tf.jvp(torch_f, tx, tt))
    _close(hvp(mg_f, mx, mt), torch_hvp(torch_f, tx, tt))
    _close(hessian(mg_f, argnums=2)(*mx), tf.hessian(torch_f, argnums=2)(*tx))
    _close(jacfwd(jacrev(mg_f, argnums=1), argnums=2)(*mx), tf.jacfwd(tf.jacrev(torch_f, argnums=1), argnums=2)(*tx))


def test_output_structures_match_torch_func():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the torch.func comparison is skipped")
    import torch.func as tf
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal(3), rng.standard_normal(2)
    ma, mb, ta, tb = mg.tensor(a), mg.tensor(b), torch.tensor(a), torch.tensor(b)
    mf = lambda x, y: (mg.sin(x) * y.sum(), y * 2.0)
    tfn = lambda x, y: (x.sin() * y.sum(), y * 2.0)
    for argnums in (0, 1, (0,), (1, 0)):
        _close(jacrev(mf, argnums=argnums)(ma, mb), tf.jacrev(tfn, argnums=argnums)(ta, tb))
        _close(jacfwd(mf, argnums=argnums)(ma, mb), tf.jacfwd(tfn, argnums=argnums)(ta, tb))
    out, fn = vjp(mf, ma, mb)
    tout, tfn_ = tf.vjp(tfn, ta, tb)
    cots = (mg.tensor(np.ones(3)), mg.tensor(np.ones(2)))
    _close(out, tout)
    _close(fn(cots), tfn_(tuple(torch.ones(s, dtype=torch.float64) for s in (3, 2))))
    aux_f = lambda x: ((x * x).sum(), mg.cos(x))
    aux_t = lambda x: ((x * x).sum(), x.cos())
    _close(grad(aux_f, has_aux=True)(ma), tf.grad(aux_t, has_aux=True)(ta))
    _close(grad_and_value(aux_f, has_aux=True)(ma), tf.grad_and_value(aux_t, has_aux=True)(ta))
    _close(jvp(aux_f, (ma,), (ma,), has_aux=True), tf.jvp(aux_t, (ta,), (ta,), has_aux=True))
    _close(jacrev(aux_f, has_aux=True)(ma), tf.jacrev(aux_t, has_aux=True)(ta))
    _close(jacfwd(aux_f, has_aux=True)(ma), tf.jacfwd(aux_t, has_aux=True)(ta))
    m_vjp, t_vjp = vjp(aux_f, ma, has_aux=True), tf.vjp(aux_t, ta, has_aux=True)
    assert len(m_vjp) == len(t_vjp) == 3
    _close(m_vjp[1](mg.tensor(1.0, dtype="float64")), t_vjp[1](torch.tensor(1.0, dtype=torch.float64)))
    _close(hvp(lambda x: (x ** 3).sum(), ma, ma), torch.autograd.functional.hvp(lambda x: (x ** 3).sum(), ta, ta))


def test_dirac_gan_jacobian_at_equilibrium_by_jacfwd():
    """jacfwd over the gradients (and R1's double backprop) gives the closed-form Jacobians of
    docs/derivations/gan.md: rotation for the GAN and WGAN, damping with R1."""
    from minigrad.models.gan import discriminator_loss_composed, generator_loss_composed, r1_penalty
    real = mg.zeros(1, 1, dtype="float64")

    def field(kind, gamma):
        def loss_d(theta, psi):
            D = lambda x: x * psi
            loss = discriminator_loss_composed(D(real), D(theta), kind)
            return loss + r1_penalty(D, real) * (0.5 * gamma) if gamma else loss

        def v(z):
            theta, psi = mg.reshape(z[0], (1, 1)), z[1]
            g_theta = grad(lambda t, p: generator_loss_composed(t * p, kind), 0)(theta, psi)
            return mg.stack([-mg.reshape(g_theta, ()), -grad(loss_d, 1)(theta, psi)])
        return v

    z0 = mg.tensor([0.0, 0.0], dtype="float64")
    for kind, gamma, s in (("minimax", 0.0, 0.5), ("non_saturating", 0.0, 0.5), ("wasserstein", 0.0, 1.0),
                           ("minimax", 1.0, 0.5), ("wasserstein", 0.3, 1.0)):
        J = jacfwd(field(kind, gamma))(z0).numpy()
        np.testing.assert_allclose(J, [[0.0, s], [-s, -gamma]], atol=1e-14)
        ev = np.linalg.eigvals(J)
        assert (abs(ev.real).max() < 1e-14) if gamma == 0 else (ev.real.max() < 0)


def test_binary_cross_entropy_and_all_reduce_sum_jvps():
    rng = np.random.default_rng(10)
    p, t = mg.tensor(rng.uniform(0.1, 0.9, (3, 2))), mg.tensor(rng.uniform(0.0, 1.0, (3, 2)))
    check_jvp_fn(lambda p, t: F.binary_cross_entropy(p, t, reduction="none"), [p, t], name="binary_cross_entropy")
    if not mg.distributed.is_available():
        pytest.skip("no MPI: the all-reduce's jvp needs a process group")
    mg.distributed.init_process_group()  # outside mpiexec: a group of one process
    try:
        x, v = _t(rng, 3), _t(rng, 3)
        _close(jvp(mg.distributed.all_reduce_sum, (x,), (v,)), (x, v))
    finally:
        mg.distributed.destroy_process_group()


def test_every_fused_op_has_a_jvp_or_says_it_has_none():
    """Attention, the CRF log-partition and squash have jvp rules; every other fused Function names its
    composed version when forward mode reaches it."""
    import importlib
    from minigrad.core import Function
    with_rule = {"ScaledDotProductAttention", "LogPartition", "Squash"}
    seen = set()
    for name in ("attention", "crf", "capsule", "gan", "vae", "margin"):
        try:
            mod = importlib.import_module(f"minigrad.models.{name}")
        except ImportError:
            mod = importlib.import_module(f"models.{name}")
        mods = [mod] + ([importlib.import_module("minigrad.nn.rnn")] if name == "attention" else [])
        for m in mods:
            for cls in vars(m).values():
                if not (isinstance(cls, type) and issubclass(cls, Function) and cls.__module__ == m.__name__):
                    continue
                seen.add(cls.__name__)
                assert cls.jvp is not Function.jvp, f"{cls.__name__} has no jvp of its own"
                if cls.__name__ in with_rule:
                    continue
                f = cls.__new__(cls)
                names = "|".join(c.__name__ for c in cls.__mro__)  # a subclass may use its base's rule
                with pytest.raises(NotImplementedError, match=f"({names}) is a fused op without a forward-mode "
                                                              r"rule \(jvp\): .*_(composed|ref)"):
                    f.jvp(None)
    assert with_rule | {"GRUStep", "LSTMStep", "DynamicRouting", "AdversarialLoss", "ClusterKL"} <= seen
