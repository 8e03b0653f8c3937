"""Regression tests for what PyTorch's OpInfo sample inputs found (each failed before its fix), with the
expected values written out from PyTorch's documented behaviour, so they run without PyTorch."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F


def _t(a, grad=True):
    return mg.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def test_matmul_and_dot_of_two_vectors_are_0d():
    a, b = _t([1.0, 2.0, 3.0]), _t([4.0, -1.0, 0.5])
    for y in (mg.matmul(a, b), a @ b, mg.dot(a, b), a.dot(b)):
        assert y.shape == () and y.item() == 3.5
    assert mg.gradcheck(mg.dot, [a, b], eps=1e-4, atol=1e-9, rtol=1e-6)
    assert mg.gradgradcheck(mg.matmul, [a, b], eps=1e-4, atol=1e-9, rtol=1e-6)
    with pytest.raises(ValueError, match=r"dot: needs two 1-D tensors .* \(2, 3\)"):
        mg.dot(_t(np.ones((2, 3))), a)


def test_matmul_with_an_empty_inner_axis_gives_zeros():
    a, b = _t(np.ones((5, 5, 0))), _t(np.ones((0, 5)))
    y = a @ b
    assert y.shape == (5, 5, 5) and not y.numpy().any()
    y.sum().backward()
    assert a.grad.shape == (5, 5, 0) and b.grad.shape == (0, 5)


@pytest.mark.parametrize("fn", [mg.softmax, mg.log_softmax])
@pytest.mark.parametrize("shape, axis", [((0,), 0), ((3, 0), -1), ((0, 3), -1), ((2, 0, 4), 1)])
def test_softmax_of_an_empty_tensor_is_empty(fn, shape, axis):
    x = _t(np.ones(shape))
    y = fn(x, axis=axis)
    assert y.shape == shape and y.dtype == np.float64
    y.sum().backward()
    assert x.grad.shape == shape


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_gives_probability_targets_that_require_grad_a_gradient(smoothing):
    rng = np.random.default_rng(0)
    logits, q = _t(rng.standard_normal((3, 4))), _t(rng.dirichlet(np.ones(4), 3))
    loss = F.cross_entropy(logits, q, label_smoothing=smoothing)
    loss.backward()
    lp = logits.numpy() - np.log(np.exp(logits.numpy()).sum(1, keepdims=True))
    np.testing.assert_allclose(q.grad.numpy(), -(1 - smoothing) * lp / 3, rtol=1e-12)
    assert mg.gradcheck(lambda a, t: F.cross_entropy(a, t, label_smoothing=smoothing), [logits, q],
                        eps=1e-4, atol=1e-9, rtol=1e-6)


def test_cross_entropy_with_constant_probability_targets_is_unchanged():
    logits, q = _t(np.zeros((2, 2))), _t([[0.5, 0.5], [1.0, 0.0]], grad=False)
    np.testing.assert_allclose(F.cross_entropy(logits, q).item(), np.log(2.0), rtol=1e-12)


@pytest.mark.parametrize("dims", [(0, 0), (-1, 0), (0, -1), (-1, -1)])
def test_transpose_of_a_0d_tensor_is_itself(dims):
    x = _t(2.5)
    y = mg.transpose(x, *dims)
    assert y.shape == () and y.item() == 2.5
    y.backward()
    assert x.grad.item() == 1.0
    assert x.transpose(*dims).shape == ()
    with pytest.raises(ValueError, match="axis=1 is out of range for a tensor with 0 dimension"):
        mg.transpose(x, 0, 1)


def test_transpose_with_two_dims_swaps_them_as_in_pytorch():
    x = _t(np.arange(24.0).reshape(2, 3, 4))
    np.testing.assert_array_equal(mg.transpose(x, 0, 2).numpy(), np.swapaxes(x.numpy(), 0, 2))
    np.testing.assert_array_equal(x.transpose(2, 0, 1).numpy(), x.numpy().transpose(2, 0, 1))


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4)])
def test_batch_norm_of_an_empty_batch_is_empty_and_leaves_running_stats(shape):
    x = _t(np.ones(shape))
    rm, rv = mg.zeros(3), mg.ones(3)
    w, b = _t(np.ones(3)), _t(np.zeros(3))
    y = F.batch_norm(x, rm, rv, w, b, training=True)
    assert y.shape == shape
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), 0.0)
    np.testing.assert_array_equal(b.grad.numpy(), 0.0)
    np.testing.assert_array_equal(rm.numpy(), 0.0)
    np.testing.assert_array_equal(rv.numpy(), 1.0)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(_t(np.ones((1, 3))), None, None, training=True)


def test_the_fixed_cases_agree_with_pytorch():
    """The same cases against PyTorch itself (skipped without it): values, shapes and gradients."""
    from minigrad.testing import torch_or_skip
    torch = torch_or_skip()
    rng = np.random.default_rng(3)

    def both(fn_mg, fn_torch, *arrays):
        xs = [_t(a) for a in arrays]
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        y, yt = fn_mg(*xs), fn_torch(*ts)
        assert y.shape == tuple(yt.shape)
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        if y.size:
            w = rng.standard_normal(y.shape)
            mg.sum(y * mg.tensor(w)).backward()
            (yt * torch.tensor(w)).sum().backward()
            for x, t in zip(xs, ts):
                gt = np.zeros(x.shape) if t.grad is None else t.grad.numpy()
                np.testing.assert_allclose(x.grad.numpy(), gt, rtol=1e-12, atol=1e-12)

    a, b = rng.standard_normal(4), rng.standard_normal(4)
    both(mg.matmul, torch.matmul, a, b)
    both(mg.dot, torch.dot, a, b)
    both(mg.matmul, torch.matmul, np.ones((5, 5, 0)), np.ones((0, 5)))
    for shape in [(0,), (3, 0), (0, 3)]:
        both(lambda x: mg.softmax(x, axis=-1), lambda x: torch.softmax(x, -1), np.ones(shape))
        both(lambda x: mg.log_softmax(x, axis=-1), lambda x: torch.log_softmax(x, -1), np.ones(shape))
    logits, q = rng.standard_normal((3, 4)), rng.dirichlet(np.ones(4), 3)
    both(lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
         lambda x, t: torch.nn.functional.cross_entropy(x, t, label_smoothing=0.1), logits, q)
    both(lambda x: mg.transpose(x, 0, -1), lambda x: torch.transpose(x, 0, -1), np.array(1.5))
    both(lambda x: F.batch_norm(x, None, None, training=True),
         lambda x: torch.nn.functional.batch_norm(x, None, None, training=True), np.ones((0, 3)))
    ties_a, ties_b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])
    both(mg.maximum, torch.maximum, ties_a, ties_b)
    both(mg.minimum, torch.minimum, ties_a, ties_b)
