"""The forward-mode benchmark's workloads run, and what it times computes the right thing (small sizes)."""
import numpy as np

from benchmarks import bench_func


def test_forward_mode_workloads_run_and_agree():
    for make, batch in ((bench_func.mlp, 4), (bench_func.cnn, 2)):
        loss, params = make("float64", batch=batch)
        rel, hv_err = bench_func.check(loss, params)
        assert rel < 1e-10 and hv_err < 1e-10
        for step in bench_func.steps(loss, params).values():
            step()


def test_small_mlp_hessian_runs():
    n, times, diff = bench_func.small_mlp_hessian(None, 1)
    assert n == 229 and len(times) == 1 and diff is None
    assert np.isfinite(list(times.values())[0][0])
