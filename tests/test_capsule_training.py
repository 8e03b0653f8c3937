"""Capsule heads of the two-digit example train in every routing and seed.

The first version's heads often stayed at chance: their squashed capsules started at length ≈ 1, where the
length hardly moves (docs/derivations/capsule.md §5). These tests train the example's own model on the 8×8
digits scaled up to 28×28 (so a digit gives the 8×8 = 64 input capsules of an MNIST digit), always available
through scikit-learn: the start must be unsaturated, and a short training must leave chance far behind.
"""
import numpy as np
import pytest

pytest.importorskip("sklearn")
from minigrad import data  # noqa: E402
from examples import capsule_two_digits as ct  # noqa: E402
from minigrad.models.capsule import VARIANTS  # noqa: E402

CHANNELS = (8, 16)


@pytest.fixture(scope="module")
def digits28():
    d = data.load_digits()
    up = lambda X: np.pad(np.kron(X, np.ones((1, 1, 3, 3), np.float32)), ((0, 0), (0, 0), (2, 2), (2, 2)))  # noqa
    (X, y), (Xt, yt) = d["train"], d["test"]
    return up(X), y, up(Xt), yt


def _trained_accuracy(digits28, routing, seed, epochs=5):
    import minigrad as mg
    X, y, Xt, yt = digits28
    mg.manual_seed(seed)
    model = ct.make(f"capsule-{routing}", CHANNELS, small=False)
    ct.train(model, X, y, epochs, 32, 3e-3, seed, "cpu", 0.25, lambda *a: None)
    return float((ct.predict(model, Xt, "cpu").argmax(1) == yt).mean())


@pytest.mark.parametrize("routing", VARIANTS)
def test_capsule_heads_start_unsaturated(digits28, routing):
    import minigrad as mg
    X = digits28[0][:256]
    for seed in range(4):
        mg.manual_seed(seed)
        lengths = ct.initial_lengths(ct.make(f"capsule-{routing}", CHANNELS, small=False), X, "cpu")
        assert lengths["mean"] < 0.9, (f"{routing} seed {seed}: capsules start at mean length {lengths['mean']:.3f}, "
                                       "where the squash is flat and the head may never leave chance")


@pytest.mark.parametrize("routing", VARIANTS)
def test_every_routing_trains(digits28, routing):
    acc = _trained_accuracy(digits28, routing, seed=0)
    assert acc > 0.5, f"{routing} seed 0: test accuracy {acc:.3f} after 5 epochs (chance: 0.1)"


@pytest.mark.slow
@pytest.mark.parametrize("routing", VARIANTS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_routing_trains_in_every_seed(digits28, routing, seed):
    # 8 epochs: a head that starts near length 0 (the squash is flat there too) leaves chance more slowly
    acc = _trained_accuracy(digits28, routing, seed, epochs=8)
    assert acc > 0.5, f"{routing} seed {seed}: test accuracy {acc:.3f} after 8 epochs (chance: 0.1)"
