"""The strict simulated GPU refuses what CuPy refuses, and minigrad keeps every array on its own device.

The simulated device is plain NumPy underneath, so these tests run everywhere (no GPU, no CuPy).
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad import backend, nn, optim
from minigrad.testing import simdevice


@pytest.fixture
def sim(monkeypatch):
    """The "sim" device kind, registered for one test and removed afterwards."""
    for name in ("_kinds", "ndarray_types", "multi_device"):
        value = getattr(backend, name)
        monkeypatch.setattr(backend, name, dict(value) if isinstance(value, dict) else value)
    simdevice.install()
    return simdevice.sim


def test_no_implicit_conversion_to_numpy(sim):
    t = mg.tensor([1.0, 2.0], device="sim:0")
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(t.data)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array(t.data, dtype=np.float32)
    np.testing.assert_array_equal(t.data.get(), [1.0, 2.0])  # the explicit way
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
    assert float(t.sum()) == 3.0 and t.tolist() == [1.0, 2.0]


def test_mixing_with_host_arrays_raises(sim):
    a = mg.tensor([1.0, 2.0], device="sim:0").data
    host = np.ones(2, dtype=np.float32)
    for mix in (lambda: a + host, lambda: host + a, lambda: sim.maximum(a, host), lambda: np.add(host, a)):
        with pytest.raises(TypeError, match="Unsupported type"):
            mix()
    with pytest.raises(TypeError, match="Unsupported type"):
        a[...] = host
    assert (a + np.float32(1)).__class__ is simdevice.ndarray  # scalars are fine, as in CuPy
    assert a[np.array([1, 0])].tolist() == [2.0, 1.0]  # CuPy copies NumPy indices over


def test_results_stay_on_the_device(sim):
    x = mg.randn(3, 4, device="sim:1", requires_grad=True)
    y = (x * 2.0).exp().sum(axis=1)
    assert y.device == "sim:1" and x.grad is None and y.sum().device == "sim:1"
    assert backend.get_array_module(y.data) is sim
    with sim.cuda.Device(1):  # reductions give 0-d device arrays, not NumPy scalars
        assert y.data.sum().__class__ is simdevice.ndarray and backend.device_of(y.data.sum()) == "sim:1"


def test_arrays_on_another_device_than_the_current_one_raise(sim):
    a = mg.tensor([1.0], device="sim:1").data
    with pytest.raises(ValueError, match="on sim:1 but the current device is sim:0"):
        a + 1.0
    with sim.cuda.Device(1):
        assert (a + 1.0).device.id == 1
    assert a.reshape(1, 1).device.id == 1  # views launch no kernel


def test_minigrad_runs_on_a_device_other_than_the_current_one(sim):
    """Ops, backward, optimizer steps, clipping, EMA and checkpoints on sim:1 while sim:0 is current."""
    mg.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).to("sim:1")
    opt = optim.Adam(m.parameters(), lr=0.1)
    ema = optim.EMA(m, decay=0.9)
    x = mg.randn(5, 4, device="sim:1")
    for _ in range(2):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(m(x), mg.tensor([0, 1, 1, 0, 1], device="sim:1"))
        loss.backward()
        nn.utils.clip_grad_norm_(m.parameters(), 0.5)
        opt.step()
        ema.update()
    assert loss.device == "sim:1" and {p.device for p in m.parameters()} == {"sim:1"}
    assert {backend.device_of(s) for s in ema.shadow.values()} == {"sim:1"}
    state = opt.state_dict()
    assert {backend.device_of(v) for s in state["state"].values() for v in s.values()
            if backend.is_array(v)} == {"sim:1"}


def test_devices_do_not_mix_and_transfers_are_explicit(sim):
    a, b = mg.ones(2, device="sim:0"), mg.ones(2, device="sim:1")
    with pytest.raises(RuntimeError, match="different devices"):
        a + b
    c = b.to("sim:0")
    assert c.device == "sim:0" and (a + c).tolist() == [2.0, 2.0]
    assert b.to("cpu").data.__class__ is np.ndarray


def test_device_names(sim):
    assert backend.parse_device("sim") == "sim:0"
    with pytest.raises(RuntimeError, match="only 2 sim device"):
        mg.zeros(1, device="sim:2")
    with pytest.raises(ValueError, match="unknown device"):
        mg.zeros(1, device="sim:x")
