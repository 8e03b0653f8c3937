"""The benchmark workloads run, and the raw-NumPy floor computes what the engine computes."""
import numpy as np
import pytest

import minigrad as mg
from benchmarks import core


@pytest.mark.parametrize("shape", [(), (4, 4)])
def test_chain_workloads_run(shape):
    for engine in ("minigrad", "numpy"):
        core.chain(engine, shape, 5, True)()


def test_numpy_floor_mlp_matches_minigrad():
    """The floor is a fair floor: the same gradients and the same Adam update as the minigrad step."""
    X, y = core.mlp_data(batch=8)
    params = core._init_mlp(np.random.default_rng(1))
    mine = [mg.tensor(p.copy(), requires_grad=True) for p in params]
    W1, b1, W2, b2, W3, b3 = mine
    h = mg.relu(mg.tensor(X) @ W1.T + b1)
    h = mg.relu(h @ W2.T + b2)
    mg.cross_entropy(h @ W3.T + b3, mg.tensor(y)).backward()
    grads = core.numpy_mlp_grads(params, X, np.eye(10, dtype=np.float32)[y])
    for t, g in zip(mine, grads):
        np.testing.assert_allclose(t.grad.numpy(), g, rtol=1e-4, atol=1e-7)
    # Both Adams get the engine's gradients: where |g| is near eps, Adam's first step g/(|g|+eps) turns
    # the 1e-7 rounding difference between the two gradient computations into a visible step difference.
    mg.optim.Adam(mine, lr=1e-3).step()
    core.NumpyAdam(params, lr=1e-3).step([t.grad.numpy() for t in mine])
    for t, p in zip(mine, params):
        np.testing.assert_allclose(t.numpy(), p, rtol=1e-6, atol=1e-9)


def test_step_workloads_run():
    core.mlp_step("minigrad")()
    core.mlp_step("numpy")()
    core.cnn_step("minigrad", batch=2)()


def test_the_benchmark_page_links_each_model_page_once(tmp_path):
    from benchmarks.__main__ import model_pages
    links = model_pages("cpu").splitlines()
    assert "- [Capsule dynamic routing: forward + backward](benchmarks/capsule.md)" in links
    assert not any("before-after" in link or "func.md" in link or "-cuda" in link for link in links)


def test_the_fast_path_table_goes_between_its_markers(tmp_path):
    from benchmarks import fast_paths
    from benchmarks.common import splice
    page = tmp_path / "architecture.md"
    page.write_text("before\n<!-- fastpaths:start -->\nold\n<!-- fastpaths:end -->\nafter\n")
    splice(page, "fastpaths", fast_paths.table([("cache", "what", "chain", "time", 1.234)], rounds=3))
    text = page.read_text()
    assert text.startswith("before\n<!-- fastpaths:start -->\nMeasured ") and "old" not in text
    assert text.endswith("<!-- fastpaths:end -->\nafter\n")
    assert "| cache | what | chain time ×1.23 |" in text and "median of 3 rounds" in text
