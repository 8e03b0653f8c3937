"""EMA of weights: the averaging math, buffers, store/restore, saving, and following the model across devices."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import backend, nn, optim


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(mg.tensor([1.0, 2.0]))
        self.b = nn.Parameter(mg.tensor(0.5))
        self.register_buffer("running", mg.tensor([10.0]))
        self.register_buffer("count", mg.tensor([0], dtype="int64"))


def test_update_is_the_exponential_average():
    m = Tiny()
    ema = optim.EMA(m, decay=0.9)
    seq = [np.array([3.0, 0.0]), np.array([-1.0, 4.0]), np.array([2.0, 2.0])]
    want = np.array([1.0, 2.0])
    for k, w in enumerate(seq):
        m.w.data = w.astype(np.float32)
        m.running.data = m.running.data + 1
        m.count.data = m.count.data + 1
        ema.update()
        want = 0.9 * want + 0.1 * w
    np.testing.assert_allclose(ema.shadow["w"], want, rtol=1e-6)
    np.testing.assert_allclose(ema.shadow["running"], [10.0 * 0.9 ** 3 + 0.1 * (0.9 ** 2 * 11 + 0.9 * 12 + 13)],
                               rtol=1e-6)
    np.testing.assert_array_equal(ema.shadow["count"], [3])  # integer buffers are copied, not averaged
    assert ema.shadow["w"].dtype == np.float32 and ema.num_updates == 3


def test_warmup_decay_and_bounds():
    m = Tiny()
    ema = optim.EMA(m, decay=0.99, warmup=True)
    assert ema.current_decay() == pytest.approx(2 / 11)
    m.w.data = np.zeros(2, np.float32)
    ema.update()
    np.testing.assert_allclose(ema.shadow["w"], np.array([1.0, 2.0]) * 2 / 11, rtol=1e-6)
    ema.num_updates = 10**6
    assert ema.current_decay() == 0.99
    with pytest.raises(ValueError, match="decay"):
        optim.EMA(m, decay=1.5)


def test_store_copy_restore_and_context_manager():
    m = Tiny()
    ema = optim.EMA(m, decay=0.5)
    m.w.data = np.array([3.0, 4.0], np.float32)
    ema.update()  # shadow w = (2, 3)
    with ema.average_parameters():
        np.testing.assert_allclose(m.w.numpy(), [2.0, 3.0])
    np.testing.assert_allclose(m.w.numpy(), [3.0, 4.0])
    ema.store()
    ema.copy_to()
    m.w.data += 100  # changing the model must not touch the shadow
    np.testing.assert_allclose(ema.shadow["w"], [2.0, 3.0])
    ema.restore()
    np.testing.assert_allclose(m.w.numpy(), [3.0, 4.0])
    with pytest.raises(RuntimeError, match="store"):
        ema.restore()
    other = Tiny()
    ema.apply_to(other)
    np.testing.assert_allclose(other.w.numpy(), [2.0, 3.0])


def test_with_an_optimizer_and_state_dict_round_trip(tmp_path):
    m = Tiny()
    opt = optim.SGD(m.parameters(), lr=0.1)
    ema = optim.EMA(m, decay=0.8)
    for _ in range(3):
        opt.zero_grad()
        ((m.w * m.w).sum() + m.b * 2).backward()
        opt.step()
        ema.update()
    mg.save(ema.state_dict(), tmp_path / "ema.mg")
    ema2 = optim.EMA(Tiny(), decay=0.1)
    ema2.load_state_dict(mg.load(tmp_path / "ema.mg"))
    assert ema2.decay == 0.8 and ema2.num_updates == 3
    for k in ema.shadow:
        np.testing.assert_array_equal(ema2.shadow[k], ema.shadow[k])
        assert ema2.shadow[k].dtype == ema.shadow[k].dtype
    with pytest.raises(KeyError, match="lacks"):
        ema2.load_state_dict({"decay": 0.5, "warmup": False, "num_updates": 0, "shadow": {}})


def test_a_model_that_is_falsy_is_still_the_one_used():
    """``len(model) == 0`` (a ModuleList holding only its own parameters) must not select the EMA's model."""
    a, b = nn.ModuleList(), nn.ModuleList()
    a.w, b.w = nn.Parameter(mg.zeros(2)), nn.Parameter(mg.ones(2))
    ema = optim.EMA(a, decay=0.5)
    ema.update(b)
    np.testing.assert_array_equal(ema.shadow["w"], [0.5, 0.5])
    ema.copy_to(b)
    np.testing.assert_array_equal(b.w.numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(a.w.numpy(), [0.0, 0.0])


class _OnGpu(np.ndarray):
    """A host array that the patched backend below reports as living on cuda:0."""


def _fake_gpu(monkeypatch):
    """device_of / to_device that tell _OnGpu arrays apart; returns the list of moves made."""
    moves = []

    def to_device(a, device):
        moves.append(device)
        return np.array(a).view(_OnGpu) if device == "cuda:0" else np.array(a)
    monkeypatch.setattr(backend, "device_of", lambda a: "cuda:0" if isinstance(a, _OnGpu) else "cpu")
    monkeypatch.setattr(backend, "to_device", to_device)
    return moves


def _place(model, cls):
    """What ``model.to(device)`` does: every parameter and buffer gets an array on the new device."""
    for _, t in list(model.named_parameters()) + list(model.named_buffers()):
        t.data = np.array(t.data).view(cls)


def test_shadows_follow_the_model_to_another_device(monkeypatch):
    moves = _fake_gpu(monkeypatch)
    m = Tiny()
    ema = optim.EMA(m, decay=0.5)
    _place(m, _OnGpu)
    m.w.data[...] = [3.0, 4.0]
    ema.update()
    assert moves == ["cuda:0"] * 4 and all(isinstance(s, _OnGpu) for s in ema.shadow.values())
    np.testing.assert_allclose(ema.shadow["w"], [2.0, 3.0])
    ema.update()
    assert len(moves) == 4  # moved once, not at every update
    ema.store()
    ema.copy_to()
    assert isinstance(m.w.data, _OnGpu)
    _place(m, np.ndarray)  # the model goes back to the CPU between store and restore
    ema.restore()
    assert type(m.w.data) is np.ndarray
    np.testing.assert_allclose(m.w.numpy(), [3.0, 4.0])
    ema.copy_to()
    assert all(type(s) is np.ndarray for s in ema.shadow.values()) and type(m.b.data) is np.ndarray
    assert ema.to("cuda:0") is ema and all(isinstance(s, _OnGpu) for s in ema.shadow.values())


def test_shadows_follow_the_model_to_the_device_and_back(device):
    m = Tiny()
    ema = optim.EMA(m, decay=0.5)
    m.to(device)
    dev = m.w.device
    ema.update()
    assert {backend.device_of(s) for s in ema.shadow.values()} == {dev}
    with ema.average_parameters():
        assert m.w.device == dev
    m.to("cpu")
    ema.copy_to()
    assert m.w.device == "cpu" and {backend.device_of(s) for s in ema.shadow.values()} == {"cpu"}
