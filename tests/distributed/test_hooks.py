"""Post-accumulate gradient hooks and end-of-backward callbacks in the core (what DistributedDataParallel uses)."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import Function, core


class Record(Function):
    """Identity whose backward notes that it ran (to see when hooks fire relative to the sweep)."""

    def __init__(self, log, name):
        self.log, self.name = log, name

    def forward(self, x):
        return x

    def backward(self, gy):
        self.log.append(f"backward {self.name}")
        return gy


def test_a_hook_fires_once_the_gradient_is_final_before_earlier_layers_run():
    log = []
    w1 = mg.tensor(np.ones((3, 3), np.float32), requires_grad=True)
    w2 = mg.tensor(np.full((3, 3), 2.0, np.float32), requires_grad=True)
    x = mg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    h = Record(log, "layer1")(mg.tanh(x @ w1))
    loss = (mg.tanh(h @ w2) ** 2).sum()
    w1.register_post_accumulate_grad_hook(lambda t: log.append(("w1", t.grad.numpy().copy())))
    w2.register_post_accumulate_grad_hook(lambda t: log.append(("w2", t.grad.numpy().copy())))
    loss.backward()
    names = [e if isinstance(e, str) else e[0] for e in log]
    assert names == ["w2", "backward layer1", "w1"]  # w2 is reported while backward is still going
    (g1, g2) = mg.grad((mg.tanh(mg.tanh(x @ w1) @ w2) ** 2).sum(), [w1, w2])
    np.testing.assert_allclose(log[0][1], g2.numpy(), rtol=1e-6)
    np.testing.assert_allclose(log[2][1], g1.numpy(), rtol=1e-6)
    np.testing.assert_allclose(w1.grad.numpy(), g1.numpy(), rtol=1e-6)


def test_a_leaf_read_by_several_ops_is_reported_once_with_the_whole_gradient():
    seen = []
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.tolist()))
    y = (w * 3.0).sum() + (mg.exp(w * w)).sum() + w[0]
    y.backward()
    want = 3.0 + 2 * np.array([1.0, 2.0]) * np.exp([1.0, 4.0]) + np.array([1.0, 0.0])
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], want, rtol=1e-5)


def test_hooks_see_accumulated_grad_and_callbacks_run_at_the_end_and_remove_works():
    events = []
    w = mg.tensor([1.0, -1.0], requires_grad=True)
    handle = w.register_post_accumulate_grad_hook(
        lambda t: (events.append(("hook", t.grad.tolist())), core.queue_callback(lambda: events.append("end"))))
    (w * 2.0).sum().backward()
    (w * 2.0).sum().backward()
    assert events == [("hook", [2.0, 2.0]), "end", ("hook", [4.0, 4.0]), "end"]
    handle.remove()
    (w * 2.0).sum().backward()
    assert len(events) == 4 and w.grad.tolist() == [6.0, 6.0]
    assert not core._grad_hooks


def test_running_backward_is_one_token_per_backward_and_none_outside():
    seen = []
    w = mg.tensor([1.0], requires_grad=True)
    h = w.register_post_accumulate_grad_hook(lambda t: seen.append(core.running_backward()))
    a, b = w * 2.0, w * 3.0
    (a + b).sum().backward()
    (w * 2.0).sum().backward()
    h.remove()
    assert core.running_backward() is None
    assert len(seen) == 2 and seen[0] is not None and seen[1] is not None and seen[0] is not seen[1]


def test_grad_does_not_fire_hooks_and_queue_callback_outside_backward_raises():
    fired = []
    w = mg.tensor([1.0], requires_grad=True)
    w.register_post_accumulate_grad_hook(lambda t: fired.append(1))
    (g,) = mg.grad((w * w).sum(), [w])
    assert fired == [] and w.grad is None and g.tolist() == [2.0]
    with pytest.raises(RuntimeError, match="no backward with gradient hooks is running"):
        core.queue_callback(lambda: None)
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w * 2).register_post_accumulate_grad_hook(print)


def test_the_hook_entry_dies_with_its_tensor():
    w = mg.tensor([1.0], requires_grad=True)
    w.register_post_accumulate_grad_hook(lambda t: None)
    assert id(w) in core._grad_hooks
    key = id(w)
    del w
    assert key not in core._grad_hooks


class FakePair:
    """A stand-in process group of two ranks whose other rank sends the same gradients (so the average is the
    local gradient); it records when each bucket's reduction starts."""

    name, rank, size = "fake", 0, 2

    def __init__(self, log):
        self.log = log

    def allgather_object(self, obj):
        return [obj, obj]

    def broadcast(self, array, src):
        return None

    def iallreduce(self, array):
        self.log.append(f"bucket of {array.size}")
        array *= 2
        return Done()


class Done:
    def wait(self):
        return None

    def test(self):
        return True


class Noted(mg.nn.Module):
    def __init__(self, log):
        super().__init__()
        self.log = log

    def forward(self, x):
        return Record(self.log, "first layer")(x)


def test_ddp_starts_buckets_during_backward_in_order_and_averages(monkeypatch):
    from minigrad import distributed as dist
    log = []
    monkeypatch.setattr(dist, "_group", FakePair(log))
    mg.manual_seed(0)
    net = mg.nn.Sequential(mg.nn.Linear(3, 4), Noted(log), mg.nn.Tanh(), mg.nn.Linear(4, 5), mg.nn.Tanh(),
                           mg.nn.Linear(5, 2))
    ddp = mg.nn.parallel.DistributedDataParallel(net, bucket_cap_mb=60 / 2**20)  # 60 bytes: 15 floats a bucket
    assert [[p.shape for p in b.params] for b in ddp._buckets] == [[(2,), (2, 5)], [(5,)], [(5, 4)], [(4,)],
                                                                   [(4, 3)]]
    x = mg.randn(6, 3)
    want = mg.grad((net(x) ** 2).sum(), list(net.parameters()))  # the reference gradients: no hook fires
    assert log == ["backward first layer"]
    log.clear()
    (ddp(x) ** 2).sum().backward()
    assert log.index("backward first layer") == 3  # buckets of the last two layers went out before it ran
    assert log[:3] == ["bucket of 12", "bucket of 5", "bucket of 20"] and log[4:] == ["bucket of 4", "bucket of 12"]
    assert ddp.early_buckets == 5
    for p, g in zip(net.parameters(), want):
        np.testing.assert_allclose(p.grad.numpy(), g.numpy(), rtol=1e-6)
