"""Jobs that the distributed tests start with ``mpiexec -n N python mpi_worker.py MODE ...`` (and the
single-process reference they are compared with, imported by the tests)."""
import argparse
import time

import numpy as np

import minigrad as mg
from minigrad import distributed as dist, forward_ad as fwad, nn
from minigrad.data import DataLoader, DistributedSampler

N_SAMPLES, GLOBAL_BATCH, FEATURES, CLASSES = 48, 12, 6, 3


def dataset():
    rng = np.random.default_rng(123)
    return rng.standard_normal((N_SAMPLES, FEATURES)).astype(np.float32), rng.integers(0, CLASSES, N_SAMPLES)


def make_model(seed, bn=False):
    """An MLP; with ``bn`` a BatchNorm1d after each hidden layer (SyncBatchNorm in the MPI job)."""
    mg.manual_seed(seed)
    if bn:
        return nn.Sequential(nn.Linear(FEATURES, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 16),
                             nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, CLASSES))
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, CLASSES))


def state(model):
    """Parameters, then floating buffers (BatchNorm's running statistics), as host arrays."""
    return [p.numpy() for p in model.parameters()] + [b.numpy() for b in model.buffers() if b.dtype.kind == "f"]


def make_optimizer(name, params):
    return mg.optim.Adam(params, lr=0.01) if name == "adam" else mg.optim.SGD(params, lr=0.1, momentum=0.9)


def step(model, opt, xb, yb):
    loss = mg.cross_entropy(model(mg.tensor(xb)), mg.tensor(yb))
    opt.zero_grad()
    loss.backward()
    opt.step()


def batches(world, rank, epochs, seed=0):
    """The index batches rank ``rank`` of ``world`` trains on, epoch by epoch (DistributedSampler, shuffled)."""
    sampler = DistributedSampler(range(N_SAMPLES), num_replicas=world, rank=rank, shuffle=True, seed=seed)
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        idx = list(sampler)
        b = GLOBAL_BATCH // world
        out += [idx[i:i + b] for i in range(0, len(idx), b)]
    return out


def reference(world, opt_name, epochs, bn=False):
    """One process, the same model as rank 0, each step on the union of the ranks' batches."""
    X, y = dataset()
    model = make_model(0, bn)
    opt = make_optimizer(opt_name, model.parameters())
    per_rank = [batches(world, r, epochs) for r in range(world)]
    for parts in zip(*per_rank):
        idx = [i for p in parts for i in p]
        step(model, opt, X[idx], y[idx])
    return state(model)


def train(a):
    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    X, y = dataset()
    module = make_model(1000 * rank, a.bn != "none")
    if a.bn == "sync":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        assert sum(isinstance(m, nn.SyncBatchNorm) for m in module.modules()) == 2
    model = nn.parallel.DistributedDataParallel(module, bucket_cap_mb=a.bucket_mb)
    opt = make_optimizer(a.opt, model.parameters())
    sampler = DistributedSampler((X, y), shuffle=True, seed=0)
    loader = DataLoader((X, y), batch_size=GLOBAL_BATCH // world, sampler=sampler)
    assert len(model._buckets) >= a.min_buckets, len(model._buckets)
    for epoch in range(a.epochs):
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            loss = mg.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    params = state(model)
    for p in model.parameters():  # every rank holds the same parameters
        gathered = dist.all_gather(p)
        assert all(np.array_equal(g.numpy(), gathered[0].numpy()) for g in gathered), "ranks disagree"
    if rank == 0:
        np.savez(a.out, *params)
    dist.barrier()
    dist.destroy_process_group()


class WithUnused(nn.Module):
    """An MLP plus a layer that forward never calls: its gradient never arrives on any rank."""

    def __init__(self):
        super().__init__()
        self.body, self.unused = make_model(0), nn.Linear(3, 3)

    def forward(self, x):
        return self.body(x)


def extras(a):
    """no_sync accumulation and a parameter without gradient, checked on every rank against local arithmetic."""
    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    X, y = dataset()
    mg.manual_seed(rank)
    model = nn.parallel.DistributedDataParallel(WithUnused(), bucket_cap_mb=0.0005, find_unused_parameters=True)
    plain = WithUnused()
    plain.load_state_dict(model.module.state_dict())  # rank 0's weights, broadcast at construction
    b = GLOBAL_BATCH // world
    micro = [list(range(k * GLOBAL_BATCH + rank * b, k * GLOBAL_BATCH + (rank + 1) * b)) for k in range(2)]
    with model.no_sync():
        mg.cross_entropy(model(mg.tensor(X[micro[0]])), mg.tensor(y[micro[0]])).backward()
    local = [p.grad.numpy().copy() for p in model.module.body.parameters()]
    mg.cross_entropy(model(mg.tensor(X[micro[1]])), mg.tensor(y[micro[1]])).backward()
    for k in range(2):  # one process: the two union batches, gradients summed
        idx = list(range(k * GLOBAL_BATCH, (k + 1) * GLOBAL_BATCH))
        mg.cross_entropy(plain(mg.tensor(X[idx])), mg.tensor(y[idx])).backward()
    for p, q in zip(model.module.body.parameters(), plain.body.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-7)
    whole = dist.all_gather(mg.tensor(np.concatenate([g.ravel() for g in local])))
    assert not all(np.array_equal(w.numpy(), whole[0].numpy()) for w in whole), "no_sync still reduced"
    assert all(float(np.abs(p.grad.numpy()).max()) == 0.0 for p in model.module.unused.parameters())
    assert model.early_buckets >= 1, model.early_buckets
    print(f"rank {rank}: extras ok", flush=True)
    dist.destroy_process_group()


def collectives(a):
    dist.init_process_group(a.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = dist.get_device()
    t = mg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) + rank, device=device)
    dist.all_reduce(t)
    want = sum(np.arange(6, dtype=np.float32).reshape(2, 3) + r for r in range(world))
    assert np.array_equal(t.numpy(), want), (t, want)
    t = mg.tensor(np.full(3, rank + 1.0, np.float32), device=device)
    dist.all_reduce(t, op="mean")
    assert np.allclose(t.numpy(), (world + 1) / 2), t
    t = mg.tensor(np.array([rank, -rank], np.float32), device=device)
    dist.all_reduce(t, op="max")
    assert t.tolist() == [world - 1, 0], t
    t = mg.tensor(np.full(4, float(rank)), device=device)
    dist.broadcast(t, src=world - 1)
    assert t.tolist() == [world - 1.0] * 4, t
    got = [mg.zeros(2, device=device) for _ in range(world)]
    dist.all_gather(got, mg.tensor([rank, 10.0 * rank], device=device))
    assert [g.tolist() for g in got] == [[r, 10.0 * r] for r in range(world)], got
    if a.backend == "mpi":
        t = mg.tensor(np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2] * (rank + 1))  # not contiguous
        dist.all_reduce(t)
        assert np.array_equal(t.numpy(), np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
                              * sum(range(1, world + 1)))
    total = world * (world + 1) / 2                          # Σ_r (r + 1)
    x = mg.tensor(np.full(3, rank + 1.0), requires_grad=True, device=device)
    y = dist.all_reduce_sum(x)
    assert np.allclose(y.numpy(), total), y
    (y * (rank + 1.0)).sum().backward()                      # rank r's share of the loss weights the sum by r + 1
    assert np.allclose(x.grad.numpy(), total), x.grad        # so every input's gradient is Σ_r (r + 1)
    with fwad.dual_level() as k:
        d = fwad.make_dual(mg.zeros(2, device=device), mg.full((2,), 2.0 ** rank, device=device), k)
        tangent = fwad.unpack_dual(dist.all_reduce_sum(d), k)
    assert np.allclose(tangent.numpy(), 2.0 ** world - 1), tangent   # the tangents add up like the values
    dist.barrier()
    print(f"rank {rank} of {world} ({dist.get_backend()}): collectives ok", flush=True)
    dist.destroy_process_group()


def mismatch(a):
    dist.init_process_group()
    rank = dist.get_rank()
    model = nn.Sequential(nn.Linear(4, 8 if rank != 1 else 9), nn.Linear(8 if rank != 1 else 9, 2))
    try:
        nn.parallel.DistributedDataParallel(model)
    except ValueError as e:
        print(f"rank {rank}: {e}", flush=True)
    try:
        dist.all_reduce(mg.zeros(3 + rank))
    except ValueError as e:
        print(f"rank {rank}: {e}", flush=True)
    dist.destroy_process_group()


def crash(a):
    dist.init_process_group()
    rank = dist.get_rank()
    if a.where == "barrier":
        if rank == 1:
            time.sleep(0.2)
            raise ZeroDivisionError("boom on purpose on rank 1")
        dist.barrier()  # the others wait here for a rank that is gone: the abort must end them
    else:
        X, y = dataset()
        model = nn.parallel.DistributedDataParallel(make_model(0), bucket_cap_mb=0.001)
        for i in range(4):
            if rank == 1 and i == 2:
                raise ZeroDivisionError("boom on purpose on rank 1")
            mg.cross_entropy(model(mg.tensor(X[:6])), mg.tensor(y[:6])).backward()  # rank 0 waits in here
    print("unreachable: the collective returned", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train", "collectives", "mismatch", "crash", "extras"])
    p.add_argument("--opt", default="sgd")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--bucket-mb", type=float, default=0.001)
    p.add_argument("--min-buckets", type=int, default=2)
    p.add_argument("--backend", default="mpi")
    p.add_argument("--where", default="barrier", choices=["barrier", "backward"])
    p.add_argument("--bn", default="none", choices=["none", "sync", "local"],
                   help="BatchNorm layers: SyncBatchNorm, or each rank's own statistics")
    p.add_argument("--out", default="params.npz")
    args = p.parse_args()
    mg.backend.set_num_threads(1) if hasattr(mg.backend, "set_num_threads") else None
    globals()[args.mode](args)
