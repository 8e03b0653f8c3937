"""minigrad.distributed end to end: real MPI jobs (``mpiexec -n 2`` and ``-n 4``) against one process."""
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

import minigrad as mg
from minigrad import distributed as dist, nn
from minigrad.data import DataLoader, DistributedSampler

import mpi_worker

WORKER = Path(__file__).with_name("mpi_worker.py")


def _mpiexec():
    """The mpiexec of this interpreter's environment (the mpich wheel puts it next to python)."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        if (folder / "mpiexec").exists():
            return str(folder / "mpiexec")
    return shutil.which("mpiexec")


def _has_mpi4py():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


needs_mpi = pytest.mark.skipif(not (_has_mpi4py() and _mpiexec()),
                               reason="mpi4py and mpiexec are not installed (pip install -e '.[distributed]')")


def run_job(n, *args, timeout=120, module=None):
    """``mpiexec -n n python mpi_worker.py args`` (or ``python -m module args``) with one BLAS thread per rank.
    Never waits past ``timeout``: the job runs in its own session, and the whole session is killed then."""
    root = str(Path(__file__).resolve().parents[2])  # the worker imports this checkout's minigrad
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    target = ["-m", module] if module else [str(WORKER)]
    cmd = [_mpiexec(), "-n", str(n), sys.executable, *target, *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=root, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} still ran after {timeout}s (killed)\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture(autouse=True)
def _no_group_left():
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


# ---- jobs of several processes -------------------------------------------------------------------------------------
@needs_mpi
@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_n_processes_train_like_one_process_on_the_full_batch(n, opt, tmp_path):
    out = tmp_path / "params.npz"
    r = run_job(n, "train", "--opt", opt, "--out", out, "--epochs", 2, "--min-buckets", 3)
    assert r.returncode == 0, r.stdout + r.stderr
    got = np.load(out)
    want = mpi_worker.reference(n, opt, epochs=2)  # 8 steps, each on the union of the ranks' batches
    assert len(got.files) == len(want)
    for i, w in enumerate(want):
        np.testing.assert_allclose(got[f"arr_{i}"], w, rtol=1e-5, atol=1e-6, err_msg=f"parameter {i}")
    start = [p.numpy() for p in mpi_worker.make_model(0).parameters()]
    assert max(float(np.abs(w - s).max()) for w, s in zip(want, start)) > 1e-2  # training moved them


@needs_mpi
@pytest.mark.parametrize("n", [2, 4])
def test_sync_batchnorm_normalises_with_the_statistics_of_the_whole_batch(n, tmp_path):
    want = mpi_worker.reference(n, "sgd", epochs=2, bn=True)  # BatchNorm1d, one process, the union batches
    for bn in ("sync", "local"):
        out = tmp_path / f"{bn}.npz"
        r = run_job(n, "train", "--opt", "sgd", "--bn", bn, "--out", out, "--epochs", 2)
        assert r.returncode == 0, r.stdout + r.stderr
        got = np.load(out)
        assert len(got.files) == len(want) == 14  # 10 parameters, then 2 running means and variances
        worst = max(float(np.abs(got[f"arr_{i}"] - w).max()) for i, w in enumerate(want))
        if bn == "sync":  # parameters and running statistics agree to float32 rounding
            assert worst < 1e-6, worst
        else:  # per-rank statistics are a different computation: the control shows the test can tell
            assert worst > 1e-4, worst


@needs_mpi
@pytest.mark.parametrize("n", [2, 4])
def test_collectives(n):
    r = run_job(n, "collectives")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("collectives ok") == n


@needs_mpi
@pytest.mark.parametrize("n", [2, 4])
def test_no_sync_accumulation_unused_parameters_and_buckets_started_during_backward(n):
    r = run_job(n, "extras")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("extras ok") == n


@needs_mpi
def test_parameters_that_differ_across_ranks_are_named_with_the_ranks():
    r = run_job(2, "mismatch")
    assert r.returncode == 0, r.stdout + r.stderr
    for rank in (0, 1):
        assert (f"rank {rank}: DistributedDataParallel: parameter '0.weight' differs across ranks "
                "(rank 0: shape (8, 4) float32; rank 1: shape (9, 4) float32)") in r.stdout, r.stdout
        assert (f"rank {rank}: minigrad.distributed.all_reduce: the tensor must have the same shape and dtype on "
                "every rank (rank 0: shape (3,) float32, rank 1: shape (4,) float32)") in r.stdout, r.stdout


@needs_mpi
@pytest.mark.parametrize("where", ["barrier", "backward"])
def test_an_exception_on_one_rank_ends_every_rank_with_its_traceback(where):
    start = time.perf_counter()
    r = run_job(2, "crash", "--where", where, timeout=60)  # rank 0 waits in a collective for rank 1, which raised
    seconds = time.perf_counter() - start
    assert r.returncode != 0
    assert seconds < 20, f"the job took {seconds:.1f}s to end"
    err = r.stderr + r.stdout
    assert "uncaught exception on rank 1 of 2; aborting every rank" in err
    assert "[rank 1] ZeroDivisionError: boom on purpose on rank 1" in err
    assert "unreachable" not in r.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not mg.cuda.is_available(), reason="the NCCL backend needs a CUDA GPU (none is present)")
@needs_mpi
def test_nccl_collectives_on_the_gpu():
    pytest.importorskip("cupy.cuda.nccl", reason="CuPy was built without NCCL")
    n = min(2, mg.backend.cuda_device_count()) if mg.backend.cuda_device_count() > 1 else 1
    r = run_job(n, "collectives", "--backend", "nccl")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("(nccl): collectives ok") == n


# ---- one process, no mpiexec ---------------------------------------------------------------------------------------
def test_outside_mpiexec_the_group_is_this_one_process():
    for fn in (dist.get_rank, dist.get_world_size, dist.barrier):
        with pytest.raises(ValueError, match="init_process_group"):  # PyTorch raises ValueError here
            fn()
    with pytest.raises(ValueError, match="world_size=2 was asked for, but mpiexec started this process as rank 0 "
                                         "of 1"):
        dist.init_process_group(world_size=2)
    assert not dist.is_initialized()
    dist.init_process_group(backend=None, world_size=1, rank=0)
    assert (dist.get_rank(), dist.get_world_size()) == (0, 1)
    t = mg.tensor([1.0, 2.0])
    dist.all_reduce(t, op="mean")
    dist.broadcast(t, src=0)
    dist.barrier()
    assert t.tolist() == [1.0, 2.0]
    assert [g.tolist() for g in dist.all_gather(t)] == [[1.0, 2.0]]
    assert dist.all_reduce(t, op=dist.ReduceOp.SUM, async_op=True).wait()
    with pytest.raises(ValueError, match="op must be"):
        dist.all_reduce(t, op="prod")
    with pytest.raises(ValueError, match="src=1 is not a rank"):
        dist.broadcast(t, src=1)
    with pytest.raises(RuntimeError, match="already initialised"):
        dist.init_process_group()
    dist.destroy_process_group()
    assert not dist.is_initialized()


def test_sync_batchnorm_in_one_process_is_batchnorm_and_converts_layers():
    x = mg.randn(6, 3, 4)
    bn = nn.BatchNorm1d(3)
    bn.weight.data[...] = [1.0, 2.0, 0.5]
    model = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.Linear(4, 4), bn))
    sync = model[1]
    assert isinstance(sync, nn.SyncBatchNorm) and sync.weight is bn.weight and sync.running_mean is bn.running_mean
    ref = nn.BatchNorm1d(3)
    ref.weight.data[...] = [1.0, 2.0, 0.5]
    dist.init_process_group()
    np.testing.assert_allclose(sync(x).numpy(), ref(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(sync.running_var.numpy(), ref.running_var.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="SyncBatchNorm"):
        sync(mg.randn(2, 5))


@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 3)),
              elements=st.floats(-3, 3, allow_nan=False)))
def test_all_reduce_sum_gradient_in_a_group_of_one(a):
    """In one process the ranks' sum is the input itself: value and gradient are checked against that."""
    if not dist.is_initialized():
        dist.init_process_group()
    x = mg.tensor(a, requires_grad=True)
    y = dist.all_reduce_sum(x)
    np.testing.assert_array_equal(y.numpy(), a)
    assert mg.gradcheck(lambda t: dist.all_reduce_sum(t) ** 2, [x])
    (g,) = mg.grad((dist.all_reduce_sum(x) ** 2).sum(), [x])
    np.testing.assert_allclose(g.numpy(), 2 * a)
    dist.destroy_process_group()


def test_ddp_of_one_process_trains_exactly_like_the_plain_module():
    X, y = mpi_worker.dataset()
    plain, wrapped = mpi_worker.make_model(0), mpi_worker.make_model(0)
    dist.init_process_group()
    ddp = nn.parallel.DistributedDataParallel(wrapped)
    assert list(ddp.state_dict()) == ["module." + k for k in plain.state_dict()]
    for model in (plain, ddp):
        opt = mg.optim.Adam(model.parameters(), lr=0.01)
        for i in range(0, 48, 12):
            mpi_worker.step(model, opt, X[i:i + 12], y[i:i + 12])
    for a, b in zip(plain.parameters(), wrapped.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ---- DistributedSampler ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 5, 12, 13, 31])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_splits_the_dataset_evenly_and_covers_it(n, replicas, drop_last):
    parts = [list(DistributedSampler(range(n), num_replicas=replicas, rank=r, seed=3, drop_last=drop_last))
             for r in range(replicas)]
    sizes = {len(p) for p in parts}
    assert len(sizes) == 1
    size = sizes.pop()
    assert size == (n // replicas if drop_last else -(-n // replicas))
    union = [i for p in parts for i in p]
    if drop_last:
        assert len(set(union)) == len(union) == size * replicas  # no sample twice, at most replicas-1 dropped
        assert n - len(union) < replicas
    else:
        assert set(union) == set(range(n))  # everything, padded by repeating the first indices
    assert all(0 <= i < n for i in union)


def test_sampler_epochs_and_order():
    s = DistributedSampler(range(20), num_replicas=2, rank=0, seed=1)
    first = list(s)
    assert list(s) == first
    s.set_epoch(1)
    other = DistributedSampler(range(20), num_replicas=2, rank=1, seed=1)
    other.set_epoch(1)
    assert list(s) != first and sorted(list(s) + list(other)) == list(range(20))
    plain = DistributedSampler(range(7), num_replicas=3, rank=1, shuffle=False)
    assert list(plain) == [1, 4, 0]  # 0..6 padded with 0, 1 to 9, then every 3rd from 1
    with pytest.raises(ValueError, match="invalid rank 3"):
        DistributedSampler(range(7), num_replicas=3, rank=3)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(range(7))


def test_sampler_matches_pytorch():
    torch = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TorchSampler
    cases = [(10, 3, True, False, 0, 0), (101, 4, True, True, 7, 3), (17, 2, False, False, 0, 1),
             (64, 7, True, False, 2**33 + 5, 2), (5, 7, True, False, 1, 0), (1000, 3, True, True, 42, 11)]
    for n, replicas, shuffle, drop_last, seed, epoch in cases:
        for rank in range(replicas):
            ours = DistributedSampler(range(n), replicas, rank, shuffle, seed, drop_last)
            theirs = TorchSampler(range(n), replicas, rank, shuffle, seed, drop_last)
            ours.set_epoch(epoch)
            theirs.set_epoch(epoch)
            assert list(ours) == list(theirs) and len(ours) == len(theirs), (n, replicas, rank)
    assert torch.__version__


def test_dataloader_takes_a_sampler():
    X = np.arange(10, dtype=np.float32)[:, None]
    s = DistributedSampler(X, num_replicas=2, rank=1, shuffle=False)
    batches = [b.numpy().ravel().tolist() for b in DataLoader(X, batch_size=2, sampler=s)]
    assert batches == [[1.0, 3.0], [5.0, 7.0], [9.0]]
    assert len(DataLoader(X, batch_size=2, sampler=s)) == 3
    with pytest.raises(ValueError, match="sampler and shuffle"):
        DataLoader(X, sampler=s, shuffle=True)


# ---- the examples' --distributed ------------------------------------------------------------------------------------
@needs_mpi
def test_cnn_example_trains_data_parallel_under_mpiexec(tmp_path):
    r = run_job(2, "--distributed", "--dataset", "digits", "--epochs", 1, "--out", tmp_path, timeout=180,
                module="examples.cnn_digits")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("digits: test accuracy") == 1  # rank 1 stays quiet
    assert '"processes": 2' in r.stdout
    assert (tmp_path / "cnn.ckpt").exists()


def test_benchmark_worker_runs_in_a_group_of_one(capsys):
    from benchmarks import bench_distributed
    bench_distributed.worker(batch=4, steps=2, warmup=1, bucket_mb=25.0)
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["world"] == 1 and result["params"] == 115114 and result["step_s"] > 0
    assert not dist.is_initialized()
