"""LayerNorm, GroupNorm and BatchNorm: gradchecks (composed, so second order too), running statistics, eval mode."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.testing import torch_or_skip
from minigrad import nn


def _t(a):
    return mg.tensor(a, dtype="float64", requires_grad=True)


@given(st.integers(1, 3), st.integers(2, 4), st.booleans(), st.integers(0, 2 ** 16))
def test_layer_norm_gradcheck_and_gradgradcheck(n, d, affine, seed):
    rng = np.random.default_rng(seed)
    x, w, b = _t(rng.standard_normal((n, 2, d))), _t(rng.standard_normal(d)), _t(rng.standard_normal(d))
    f = (lambda x, w, b: F.layer_norm(x, d, w, b)) if affine else (lambda x: F.layer_norm(x, (2, d)))
    args = [x, w, b] if affine else [x]
    assert mg.gradcheck(f, args)
    assert mg.gradgradcheck(f, args)


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 2), st.sampled_from([(), (3,), (2, 2)]), st.booleans(),
       st.integers(0, 2 ** 16))
def test_group_norm_gradcheck_and_gradgradcheck(n, groups, per_group, spatial, affine, seed):
    rng = np.random.default_rng(seed)
    c = groups * per_group
    x, w, b = _t(rng.standard_normal((n, c) + spatial)), _t(rng.standard_normal(c)), _t(rng.standard_normal(c))
    f = (lambda x, w, b: F.group_norm(x, groups, w, b)) if affine else (lambda x: F.group_norm(x, groups))
    args = [x, w, b] if affine else [x]
    assert mg.gradcheck(f, args)
    assert mg.gradgradcheck(f, args)


@pytest.mark.parametrize("shape,groups,affine", [((2, 6, 4, 3), 3, "weight"), ((3, 4, 5), 1, "both"),
                                                 ((2, 4, 3), 4, "none")])
def test_group_norm_matches_torch(shape, groups, affine):
    """Values and the gradients of input, weight and bias against torch.nn.functional.group_norm (float64)."""
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    x, w, b, gy = (rng.standard_normal(s) for s in (shape, shape[1], shape[1], shape))
    ours = [_t(x)] + [_t(a) for a in (w, b)[:{"none": 0, "weight": 1, "both": 2}[affine]]]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)[:len(ours)]]
    y = F.group_norm(ours[0], groups, *ours[1:], eps=1e-4)
    yt = torch.nn.functional.group_norm(theirs[0], groups, *theirs[1:], eps=1e-4)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), atol=1e-10)
    (y * mg.tensor(gy)).sum().backward()
    (yt * torch.tensor(gy)).sum().backward()
    for a, at in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), at.grad.numpy(), atol=1e-10)


def test_group_norm_layer_is_batch_independent_and_eval_agnostic():
    gn = nn.GroupNorm(2, 4)
    assert list(gn.state_dict()) == ["weight", "bias"] and gn.weight.numpy().tolist() == [1.0] * 4
    assert repr(gn) == "GroupNorm(2, 4, eps=1e-05, affine=True)"
    assert list(nn.GroupNorm(2, 4, affine=False).parameters()) == []
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    y = gn(mg.tensor(x)).numpy()
    np.testing.assert_allclose(gn.eval()(mg.tensor(x[1:2])).numpy(), y[1:2], rtol=1e-6, atol=1e-6)
    groups = y.reshape(3, 2, 10)  # each sample's group has mean 0 and variance 1
    np.testing.assert_allclose(groups.mean(-1), 0, atol=1e-6)
    np.testing.assert_allclose(groups.var(-1), 1, rtol=1e-3)


@given(st.integers(2, 4), st.sampled_from([(), (3,), (2, 2)]), st.integers(0, 2 ** 16))
def test_batch_norm_training_gradcheck_and_gradgradcheck(n, spatial, seed):
    rng = np.random.default_rng(seed)
    x, w, b = _t(rng.standard_normal((n, 2) + spatial)), _t(rng.standard_normal(2)), _t(rng.standard_normal(2))
    f = lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)  # noqa: E731
    assert mg.gradcheck(f, [x, w, b])
    assert mg.gradgradcheck(f, [x, w, b])


def test_batch_norm_eval_gradcheck():
    rng = np.random.default_rng(0)
    rm, rv = mg.tensor(rng.standard_normal(3), dtype="float64"), mg.tensor(rng.random(3) + 0.5, dtype="float64")
    x, w, b = _t(rng.standard_normal((2, 3, 2))), _t(rng.standard_normal(3)), _t(rng.standard_normal(3))
    assert mg.gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False), [x, w, b])


def test_running_statistics_follow_pytorch_rules():
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm2d(3, momentum=0.2)
    x = rng.standard_normal((4, 3, 2, 5)).astype(np.float32)
    y = bn(mg.tensor(x))
    n = 4 * 2 * 5
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.2 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.8 + 0.2 * var * n / (n - 1), rtol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 1
    np.testing.assert_allclose(y.numpy().mean(axis=(0, 2, 3)), 0, atol=1e-5)  # batch statistics in training
    bn.eval()
    y = bn(mg.tensor(x))
    expect = (x - bn.running_mean.numpy()[:, None, None]) / np.sqrt(bn.running_var.numpy()[:, None, None] + 1e-5)
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-5, atol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 1  # eval leaves the buffers alone


def test_momentum_none_is_a_cumulative_average():
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm1d(2, momentum=None)
    xs = [rng.standard_normal((5, 2)) for _ in range(3)]
    for x in xs:
        bn(mg.tensor(x))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([x.mean(0) for x in xs], axis=0), rtol=1e-5)


def test_no_running_stats_always_uses_the_batch():
    bn = nn.BatchNorm1d(2, track_running_stats=False, affine=False).eval()
    assert bn.state_dict() == {} and list(bn.parameters()) == []
    y = bn(mg.tensor(np.random.default_rng(0).standard_normal((6, 2))))
    np.testing.assert_allclose(y.numpy().mean(0), 0, atol=1e-6)


def test_state_dict_names_and_dtypes():
    bn = nn.BatchNorm2d(4)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert bn.num_batches_tracked.dtype == np.int64 and bn.running_var.numpy().tolist() == [1.0] * 4
    ln = nn.LayerNorm((2, 3))
    assert ln.weight.shape == ln.bias.shape == (2, 3)


def test_float32_in_float32_out():
    x = mg.tensor(np.random.default_rng(0).random((4, 3, 2), dtype=np.float32), requires_grad=True)
    for layer in (nn.BatchNorm1d(3), nn.LayerNorm(2), nn.BatchNorm1d(3).eval(), nn.GroupNorm(3, 3)):
        y = layer(x)
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == np.float32


@pytest.mark.parametrize("call,match", [
    (lambda: nn.BatchNorm2d(3)(mg.zeros(2, 3, 4)), r"BatchNorm2d: expected 4-D input, got shape \(2, 3, 4\)"),
    (lambda: nn.BatchNorm1d(3)(mg.zeros(2, 4)), r"BatchNorm1d\(num_features=3\): input has 4 channels"),
    (lambda: nn.BatchNorm1d(3)(mg.zeros(1, 3)), r"more than 1 value per channel"),
    (lambda: nn.LayerNorm(4)(mg.zeros(2, 3)), r"LayerNorm\(normalized_shape=\(4,\)\): input of shape \(2, 3\)"),
    (lambda: F.layer_norm(mg.zeros(2, 3), 3, mg.zeros(2)), r"weight must have shape \(3,\)"),
    (lambda: F.group_norm(mg.zeros(2, 6, 3), 4), r"group_norm: num_groups must be a positive divisor of the 6 "),
    (lambda: F.group_norm(mg.zeros(2, 6), 3, mg.ones(6), mg.zeros(3)), r"bias must have shape \(6,\) .* got \(3,\)"),
    (lambda: F.group_norm(mg.zeros(6), 3), r"group_norm: input must have a channel axis"),
    (lambda: nn.GroupNorm(4, 6), r"num_channels \(6\) must be divisible by num_groups \(4\)"),
    (lambda: nn.GroupNorm(2, 6)(mg.zeros(2, 4, 3)), r"GroupNorm\(num_channels=6\): .* got shape \(2, 4, 3\)"),
])
def test_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
