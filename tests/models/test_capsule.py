"""Capsules: squash and dynamic routing (hand-written vs composed vs NumPy vs PyTorch, gradient checks),
the soft k-means objective of the "kmeans" routing, the Capsule layer and the margin loss."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import tensors
from minigrad.models.capsule import (VARIANTS, Capsule, capsule_lengths, capsule_margin_loss, dynamic_routing,
                            dynamic_routing_composed, soft_kmeans_objective, squash, squash_composed)

from minigrad.testing import torch_or_skip

routing_shapes = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3))
VALUES = st.floats(-2.0, 2.0, allow_nan=False, width=64)


def _leaf(a):
    return mg.Tensor(np.array(a, dtype=np.float64), requires_grad=True)


# ---- NumPy reference ----------------------------------------------------------------------------------------
def np_squash(x, c=1.0, axis=-1):
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, n ** 2 / (c + n ** 2) * x / n, 0.0)


def np_routing(u, T, variant, c=1.0):
    B, I, J, D = u.shape
    b = np.zeros((B, I, J))
    for t in range(T):
        cc = np.exp(b - b.max(2, keepdims=True))
        cc /= cc.sum(2, keepdims=True)
        s = np.einsum("bij,bijd->bjd", cc, u)
        if t == T - 1:
            return np_squash(s, c)
        n = np.linalg.norm(s, axis=-1, keepdims=True)
        v = s / np.where(n > 0, n, 1.0) if variant == "kmeans" else np_squash(s, c)
        a = np.einsum("bijd,bjd->bij", u, v)
        b = b + a if variant == "sabour" else a


# ---- squash -------------------------------------------------------------------------------------------------
@given(tensors(shape=(3, 4), elements=VALUES), st.sampled_from([0.5, 1.0, 2.0]), st.sampled_from([0, 1, -1]))
def test_squash_matches_formula_and_composed(x, c, axis):
    ref = np_squash(x.numpy(), c, axis)
    np.testing.assert_allclose(squash(x, axis=axis, c=c).numpy(), ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(squash_composed(x, axis=axis, c=c).numpy(), ref, rtol=1e-9, atol=1e-12)
    n = np.linalg.norm(ref, axis=axis)
    assert (n < 1).all()


@given(tensors(shape=(2, 3), elements=VALUES), st.sampled_from([0.5, 1.0]), st.sampled_from([1e-12, 0.3]))
def test_squash_gradcheck(x, c, eps):
    # central differences of the second derivative lose all accuracy for rows of norm ~1e-5 (step 1e-6);
    # behaviour at and near zero is pinned by test_squash_is_finite_at_zero
    assume(np.linalg.norm(x.numpy(), axis=-1).min() > 1e-2)
    assert mg.gradcheck(lambda t: squash(t, c=c, eps=eps), [x])
    assert mg.gradgradcheck(lambda t: squash_composed(t, c=c, eps=eps), [x])


def test_squash_is_finite_at_zero():
    for f in (squash, squash_composed):
        x = mg.zeros(2, 3, dtype="float64", requires_grad=True)
        y = f(x, c=0.5)
        y.backward(mg.ones(2, 3, dtype="float64"))
        assert (y.numpy() == 0).all() and (x.grad.numpy() == 0).all()
    x = _leaf([[0.0, 0.0], [1e-7, -2e-7]])
    assert mg.gradcheck(squash, [x], eps=1e-9)
    assert np.isfinite(mg.grad(squash_composed(x).sum(), x)[0].numpy()).all()


def test_squash_keeps_float32_and_checks_args():
    x = mg.randn(4, 8, requires_grad=True)
    y = squash(x, c=0.5)
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    with pytest.raises(ValueError, match="c must be positive"):
        squash(x, c=0.0)
    with pytest.raises(ValueError, match="eps must be positive"):
        squash(x, eps=0.0)


# ---- dynamic routing ----------------------------------------------------------------------------------------
@given(st.data(), routing_shapes, st.sampled_from(VARIANTS), st.integers(1, 4), st.sampled_from([0.5, 1.0]))
def test_routing_forward_matches_numpy(data, shape, variant, T, c):
    u = data.draw(tensors(shape=shape, elements=VALUES))
    ref = np_routing(u.numpy(), T, variant, c)
    # rtol 1e-6, not 1e-8: when an output capsule's s cancels to ~1e-15, k-means' s/|s| is rounding noise that
    # the next iteration carries into the others at ~1e-8
    np.testing.assert_allclose(dynamic_routing(u, T, variant, c).numpy(), ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dynamic_routing_composed(u, T, variant, c).numpy(), ref, rtol=1e-6, atol=1e-9)


@given(st.data(), routing_shapes, st.sampled_from(VARIANTS), st.integers(1, 4), st.booleans(),
       st.sampled_from([1e-12, 0.3]))
def test_routing_hand_written_backward_equals_composed(data, shape, variant, T, detach, eps):
    u = data.draw(tensors(shape=shape, elements=VALUES))
    a, b = _leaf(u.numpy()), _leaf(u.numpy())
    ya = dynamic_routing(a, T, variant, 0.5, eps=eps, detach=detach)
    yb = dynamic_routing_composed(b, T, variant, 0.5, eps=eps, detach=detach)
    np.testing.assert_allclose(ya.numpy(), yb.numpy(), rtol=1e-10, atol=1e-12)
    g = mg.Tensor(np.random.default_rng(1).standard_normal(ya.shape))
    np.testing.assert_allclose(mg.grad(ya, a, g)[0].numpy(), mg.grad(yb, b, g)[0].numpy(), rtol=1e-8, atol=1e-10)


@given(st.data(), st.sampled_from(VARIANTS), st.integers(2, 3))
def test_routing_gradcheck(data, variant, T):
    u = data.draw(tensors(shape=(2, 3, 2, 3), elements=VALUES))
    assert mg.gradcheck(lambda x: dynamic_routing(x, T, variant), [u])


def test_routing_composed_gradcheck_and_detach_is_a_real_difference():
    u = _leaf(np.random.default_rng(2).standard_normal((1, 3, 2, 2)))
    assert mg.gradcheck(lambda x: dynamic_routing_composed(x, 3, "su", 0.5), [u])
    g = mg.grad(dynamic_routing(u, 3).sum(), u)[0].numpy()
    gd = mg.grad(dynamic_routing(u, 3, detach=True).sum(), u)[0].numpy()
    assert not np.allclose(g, gd)


def test_one_iteration_is_squash_of_the_mean_prediction_for_every_variant():
    u = mg.tensor(np.random.default_rng(3).standard_normal((2, 5, 3, 4)))
    ref = np_squash(u.numpy().sum(axis=1) / 3)                # c_ij = 1/J on the first pass
    for variant in VARIANTS:
        np.testing.assert_allclose(dynamic_routing(u, 1, variant).numpy(), ref, rtol=1e-5, atol=1e-6)


def test_routing_float32_and_errors():
    u = mg.randn(2, 6, 3, 4, requires_grad=True)
    v = dynamic_routing(u, 3, "kmeans")
    v.sum().backward()
    assert v.shape == (2, 3, 4) and v.dtype == np.float32 and u.grad.dtype == np.float32
    with pytest.raises(ValueError, match=r"\(B, in_caps, out_caps, dim\)"):
        dynamic_routing(mg.randn(2, 3, 4), 3)
    with pytest.raises(ValueError, match="variant must be one of"):
        dynamic_routing(u, 3, "em")
    with pytest.raises(ValueError, match="iterations"):
        dynamic_routing(u, 0)
    with pytest.raises(RuntimeError, match="no second derivative"):
        x = _leaf(np.ones((1, 2, 2, 2)))
        mg.grad(dynamic_routing(x).sum(), x, create_graph=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_routing_against_pytorch(variant):
    torch = torch_or_skip()
    u = np.random.default_rng(4).standard_normal((3, 7, 4, 5))
    g = np.random.default_rng(5).standard_normal((3, 4, 5))

    def tsquash(x):
        q = (x * x).sum(-1, keepdim=True)
        return x * q / ((0.5 + q) * torch.sqrt(q + 1e-12))

    ut = torch.tensor(u, requires_grad=True)
    b = torch.zeros(3, 7, 4, dtype=torch.float64)
    for t in range(3):
        c = torch.softmax(b, dim=2)
        s = (c[..., None] * ut).sum(1)
        if t == 2:
            vt = tsquash(s)
            break
        v = torch.nn.functional.normalize(s, dim=-1, eps=0) if variant == "kmeans" else tsquash(s)
        a = (ut * v[:, None]).sum(-1)
        b = b + a if variant == "sabour" else a
    vt.backward(torch.tensor(g))
    x = _leaf(u)
    y = dynamic_routing(x, 3, variant, 0.5)
    y.backward(mg.tensor(g, dtype="float64"))
    np.testing.assert_allclose(y.numpy(), vt.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), ut.grad.numpy(), rtol=1e-7, atol=1e-10)


# ---- the clustering view ------------------------------------------------------------------------------------
def _unit(v):
    """v/‖v‖ over the last axis (0 stays 0), safe for tiny v."""
    m = np.abs(v).max(axis=-1, keepdims=True)
    w = v / np.where(m > 0, m, 1.0)
    n = np.linalg.norm(w, axis=-1, keepdims=True)
    return w / np.where(n > 0, n, 1.0)


@given(st.data(), st.integers(1, 3), st.integers(2, 3))
def test_kmeans_routing_never_increases_its_objective(data, I, J):
    u = data.draw(tensors(shape=(2, I, J, 3), elements=VALUES.filter(lambda x: x == 0 or abs(x) > 1e-100),
                          requires_grad=False))
    L = [soft_kmeans_objective(u, mg.zeros(2, J, 3, dtype="float64")).numpy()]
    np.testing.assert_allclose(L[0], -I * np.log(J))
    for T in range(1, 7):   # ε = 1e-300: the loop's centres are unit vectors even for tiny s (the exact iteration)
        v = _unit(dynamic_routing(u, T, "kmeans", eps=1e-300).numpy())
        L.append(soft_kmeans_objective(u, mg.tensor(v, dtype="float64")).numpy())
    assert (np.diff(np.stack(L), axis=0) <= 1e-9).all()


# ---- layer and loss -----------------------------------------------------------------------------------------
def test_capsule_layer_shapes_shared_and_not():
    mg.manual_seed(0)
    shared = Capsule(None, 4, 6, 5, shared=True, routing="su")
    assert shared.weight.shape == (6, 20)
    assert shared(mg.randn(2, 9, 6)).shape == (2, 4, 5)
    assert shared(mg.randn(2, 17, 6)).shape == (2, 4, 5)   # any number of input capsules
    own = Capsule(9, 4, 6, 5, shared=False)
    assert own.weight.shape == (9, 6, 20)
    with pytest.raises(ValueError, match=r"\(B, 9, 6\)"):
        own(mg.randn(2, 8, 6))
    own.weight.data[...] = shared.weight.data[None]           # equal per-capsule matrices = shared
    u = mg.randn(2, 9, 6)
    shared.routing = "sabour"
    np.testing.assert_allclose(own(u).numpy(), shared(u).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="routing must be one of"):
        Capsule(3, 2, 2, 2, routing="dynamic")


@pytest.mark.parametrize("shared", [True, False])
def test_capsule_layer_gradcheck(shared):
    mg.manual_seed(1)
    layer = Capsule(3, 2, 2, 2, shared=shared, routing="kmeans").to(dtype="float64")
    u = _leaf(np.random.default_rng(6).standard_normal((2, 3, 2)))
    w = _leaf(layer.weight.numpy())
    layer(u).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.shape == layer.weight.shape

    def f(x, weight):
        layer.weight = weight                                 # the checked copy stands in for the Parameter
        return layer(x)
    assert mg.gradcheck(f, [u, w])


def np_margin(L, T, mp=0.9, mm=0.1, lam=0.5):
    return (T * np.maximum(0, mp - L) ** 2 + lam * (1 - T) * np.maximum(0, L - mm) ** 2).sum(1).mean()


@given(tensors(shape=(4, 3), elements=st.floats(0.0, 1.0, width=64)), st.sampled_from([0.25, 0.5]))
def test_margin_loss_indices_and_multi_hot(L, lam):
    y = np.array([0, 2, 1, 2])
    onehot = np.eye(3)[y]
    ref = np_margin(L.numpy(), onehot, lam=lam)
    np.testing.assert_allclose(capsule_margin_loss(L, y, lam=lam).item(), ref, rtol=1e-12)
    np.testing.assert_allclose(capsule_margin_loss(L, onehot.astype(bool), lam=lam).item(), ref, rtol=1e-12)
    two = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [0, 0, 0]])
    np.testing.assert_allclose(capsule_margin_loss(L, two, lam=lam).item(), np_margin(L.numpy(), two, lam=lam))
    assert mg.gradcheck(lambda t: capsule_margin_loss(t, y, lam=lam), [L])


def test_margin_loss_errors_and_lengths():
    L = mg.rand(3, 4)
    with pytest.raises(IndexError, match="outside"):
        capsule_margin_loss(L, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="only 0 and 1"):
        capsule_margin_loss(L, np.full((3, 4), 0.5))
    with pytest.raises(ValueError, match=r"\(3,\) \(indices\)"):
        capsule_margin_loss(L, np.zeros((3, 5)))
    v = mg.randn(2, 3, 4)
    np.testing.assert_allclose(capsule_lengths(v).numpy(), np.linalg.norm(v.numpy(), axis=-1), rtol=1e-6)
