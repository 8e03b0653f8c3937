"""Every example runs in --quick mode through the launcher and writes its results.json (CI smoke test)."""
import json
import os
import types

import numpy as np
import pytest

from minigrad.testing import DOWNLOAD_FAILED
from examples import discover
from examples.__main__ import main
from minigrad.data import DatasetNotFound

EXAMPLES = sorted(discover())


def test_launcher_lists_every_example(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for name in EXAMPLES:
        assert name in listed


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_quick(name, tmp_path, monkeypatch, device):
    pytest.importorskip("matplotlib", reason="examples need the 'examples' extra")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    try:
        assert main(["run", name, "--quick", "--out", str(tmp_path), "--device", device]) == 0
    except DatasetNotFound as e:
        if DOWNLOAD_FAILED not in os.environ:
            raise
        pytest.skip(f"the data sets could not be downloaded here: {os.environ[DOWNLOAD_FAILED]} ({e})")
    results = json.loads((tmp_path / name / "results.json").read_text())
    assert results, f"{name} returned no metrics"
    module = discover()[name]
    assert results["headline"]["claim"] == module.HEADLINE and results["headline"]["numbers"]
    pictures = sorted(p.name for p in (tmp_path / name).glob("*.png"))
    if results.get("smoke_run"):  # a quick run that does not show the effect draws nothing that would suggest it
        assert not pictures, f"{name}: a smoke run wrote {pictures}"
    else:
        assert module.QUICK_SHOWS_HEADLINE and results["headline"]["shown"] is True


@pytest.mark.parametrize("argv", [["run", "gan_dirac", "--device", "gpu"], ["demo", "--device", "cuda:x"]])
def test_a_bad_device_is_a_one_line_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and err[-1].startswith("python -m examples") and "argument --device:" in err[-1]


def test_run_hands_the_example_its_own_options(tmp_path, monkeypatch):
    """``run NAME --option`` reaches the example's command line: the setting shows in results.json, as does the
    command that reproduces the run."""
    pytest.importorskip("matplotlib", reason="examples need the 'examples' extra")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert main(["run", "gan_ring", "--quick", "--out", str(tmp_path), "--seeds", "1", "--steps", "7"]) == 0
    results = json.loads((tmp_path / "gan_ring" / "results.json").read_text())
    assert "--steps 7" in results["meta"]["command"]
    assert json.dumps(results).count('"steps": 7') >= 1, "the example did not get --steps 7"


def test_run_refuses_an_option_its_example_does_not_know(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "gan_dirac", "--quick", "--out", str(tmp_path), "--no-such-option"])
    assert info.value.code == 2 and "--no-such-option" in capsys.readouterr().err


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_has_a_main_that_returns_its_metrics(name):
    import inspect
    main_fn = getattr(discover()[name], "main", None)
    assert main_fn is not None and "argv" in inspect.signature(main_fn).parameters
    assert "return " in inspect.getsource(main_fn)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_passes_its_device_on(name):
    """run(device=...) must put the work on that device: the argument is passed on to calls, not only recorded."""
    import inspect
    import re
    body = inspect.getsource(discover()[name].run).split(")", 1)[1]
    calls = [line for line in body.splitlines() if re.search(r"device=device|\.to\(device\)|[(,] ?device[,)]", line)
             and "return run(" not in line]
    assert calls, f"{name}.run accepts device but never passes it on"


def test_demo_table_and_readme_block(tmp_path):
    from examples.__main__ import demo_table, update_readme
    rows = [("a", "full", {"headline": {"claim": "it learns", "shown": True, "numbers": "acc 0.98"}, "seconds": 12.3}),
            ("b", "smoke run", {"headline": {"claim": "it wins", "shown": False, "numbers": "0.1 vs 0.1"},
                                "seconds": 4.0}),
            ("c", "FAILED", "ValueError: boom")]
    table = demo_table(rows, wall=125.0, cpu=100.0, device="cpu")
    assert "| a | full | it learns — shown | acc 0.98 | 12 |" in table
    assert "| b | smoke run | it wins — not shown | 0.1 vs 0.1 | 4 |" in table and "| c | FAILED |" in table
    assert "the whole demo took 2.1 min (1.7 min of CPU time" in table
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- demo-table:start -->\nold\n<!-- demo-table:end -->\ny\n")
    update_readme(table, readme)
    text = readme.read_text()
    assert "old" not in text and table in text and text.startswith("x\n") and text.endswith("y\n")


def test_a_stopped_cluster_vae_resumes_from_its_checkpoint_exactly(tmp_path):
    """Two epochs in one go, or one epoch, a stop, and the same call again: the same weights (up to float32
    rounding: a reloaded weight may sit in another memory order, which changes the BLAS summation order) and
    the whole curve."""
    import minigrad as mg
    from examples.vae_cluster import train_cluster_vae
    X = np.random.default_rng(0).random((60, 1, 8, 8)).astype(np.float32)
    kw = dict(batch_size=20, latent_dim=3, hidden=8)
    straight, c1 = train_cluster_vae(X, 3, 0, "cpu", 2, log=lambda *a, **k: None, curve=[], **kw), []
    ckpt = tmp_path / "ckpt.mg"
    record = lambda curve: (lambda epoch, model, loss, s: curve.append({"epoch": epoch, "loss": loss}))
    train_cluster_vae(X, 3, 0, "cpu", 1, log=lambda *a, **k: None, checkpoint=ckpt, curve=c1,
                      after_epoch=record(c1), **kw)
    c2 = []
    resumed = train_cluster_vae(X, 3, 0, "cpu", 2, log=lambda *a, **k: None, checkpoint=ckpt, curve=c2,
                                after_epoch=record(c2), **kw)
    assert [p["epoch"] for p in c2] == [1, 2]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        np.testing.assert_allclose(mg.tensor(a).numpy(), mg.tensor(b).numpy(), rtol=1e-5, atol=1e-7, err_msg=name)
    with pytest.raises(ValueError, match="written with the settings"):
        train_cluster_vae(X, 4, 0, "cpu", 2, log=lambda *a, **k: None, checkpoint=ckpt, **kw)


def test_a_resumed_run_counts_the_time_of_the_processes_before_it(tmp_path, monkeypatch):
    """The checkpoint carries the seconds spent on it; the wall time of the run that resumes it adds them, and
    says how much came from earlier processes."""
    from examples import common
    import minigrad as mg
    clock = iter([1000.0, 1100.0, 5000.0, 5030.0])   # first process: 100 s; second: 30 s after taking over
    monkeypatch.setattr(common, "time", types.SimpleNamespace(time=lambda: next(clock)))
    monkeypatch.setattr(common, "_CHECKPOINT_CLOCKS", {})
    path, model = tmp_path / "ckpt.mg", mg.nn.Linear(2, 1)
    assert common.resume_checkpoint(path, "s", "cpu", {"model": model}, {}, "t") == (0, None)
    common.save_checkpoint(path, "s", 1, {"model": model}, {})
    monkeypatch.setattr(common, "_CHECKPOINT_CLOCKS", {})           # a new process
    monkeypatch.setattr(common, "_STARTED", 4990.0)
    assert common.resume_checkpoint(path, "s", "cpu", {"model": model}, {}, "t")[0] == 1
    meta = common.run_meta()
    assert meta["earlier_processes_seconds"] == 100.0 and meta["wall_seconds"] == 5030.0 - 4990.0 + 100.0


def test_a_stopped_dcgan_resumes_from_its_checkpoint_and_trains_on(tmp_path, monkeypatch):
    """Two epochs in one go, or one epoch, then the same command with --epochs 2: the same losses per epoch."""
    pytest.importorskip("matplotlib", reason="examples need the 'examples' extra")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from examples import gan_dcgan
    judge = gan_dcgan.train_classifier   # a judge trained on 500 digits is enough here
    monkeypatch.setattr(gan_dcgan, "train_classifier", lambda X, y, Xte, yte, seed, epochs=2:
                        judge(X[:500], y[:500], Xte, yte, seed, epochs=1))
    kw = dict(n_train=128, batch=64, channels=4, latent_dim=8)
    straight = gan_dcgan.run(out_dir=tmp_path / "a", epochs=2, **kw)
    gan_dcgan.run(out_dir=tmp_path / "b", epochs=1, **kw)
    assert (tmp_path / "b" / "checkpoint.mg").exists()
    resumed = gan_dcgan.run(out_dir=tmp_path / "b", epochs=2, **kw)
    assert [p["epoch"] for p in resumed["log"]] == [1, 2]
    for a, b in zip(straight["log"], resumed["log"]):
        np.testing.assert_allclose([a["loss_d"], a["loss_g"]], [b["loss_d"], b["loss_g"]], rtol=1e-4)
    with pytest.raises(ValueError, match="written with the settings"):
        gan_dcgan.run(out_dir=tmp_path / "b", epochs=3, **{**kw, "channels": 8})


def test_a_stopped_capsule_head_resumes_from_its_checkpoint(tmp_path):
    import minigrad as mg
    from examples import capsule_two_digits as cap
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 40)
    quiet = lambda *a, **k: None

    def model():
        mg.manual_seed(0)
        return cap.make("capsule-kmeans", (2, 4), True)
    a = model()
    cap.train(a, X, y, 2, 20, 1e-3, 0, "cpu", 0.25, quiet)
    ckpt, curve = tmp_path / "c.mg", []
    after = lambda epoch, loss, s: curve.append({"epoch": epoch})
    cap.train(model(), X, y, 1, 20, 1e-3, 0, "cpu", 0.25, quiet, after, checkpoint=ckpt, settings="s", curve=curve)
    b, curve2 = model(), []
    cap.train(b, X, y, 2, 20, 1e-3, 0, "cpu", 0.25, quiet, lambda e, l, s: curve2.append({"epoch": e}),
              checkpoint=ckpt, settings="s", curve=curve2)
    assert [p["epoch"] for p in curve2] == [1, 2]
    for (name, u), v in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_allclose(mg.tensor(u).numpy(), mg.tensor(v).numpy(), rtol=1e-5, atol=1e-7, err_msg=name)
    with pytest.raises(ValueError, match="written with the settings"):
        cap.train(model(), X, y, 3, 20, 1e-3, 0, "cpu", 0.25, quiet, checkpoint=ckpt, settings="other")


def test_the_recorded_command_is_the_one_typed_with_dash_m(tmp_path):
    """``python -m package.module args`` is recorded as typed, not as the module's file path."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "probe.py").write_text("from examples.common import command_line\nprint(command_line())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(tmp_path)])}
    out = subprocess.run([sys.executable, "-m", "probe", "--epochs", "3"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, check=True).stdout.strip()
    assert out == "python -m probe --epochs 3"


def test_glorot_init_is_keras_default_and_part_of_a_checkpoints_settings(tmp_path):
    """Glorot-uniform weights (bound √(6 / (fan_in + fan_out))), zero biases, class means left at zero; a
    checkpoint written with one init refuses to resume with the other."""
    import math
    from examples.vae_cluster import train_cluster_vae
    from minigrad.models.vae import ClusterVAE, glorot_init_
    model = glorot_init_(ClusterVAE(10, latent_dim=20, arch="conv"))
    w = model.to_mu.weight.numpy()              # Linear (20, 3136)
    bound = math.sqrt(6 / (20 + 3136))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert not model.to_mu.bias.numpy().any() and not model.class_means.numpy().any()
    conv = model.encoder[2].weight.numpy()      # Conv2d(32, 32, 3): fan_in = fan_out = 288
    assert np.abs(conv).max() <= math.sqrt(6 / 576) and conv.std() > 0.9 * math.sqrt(6 / 576) / math.sqrt(3)
    X = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
    kw = dict(batch_size=20, latent_dim=3, hidden=8, log=lambda *a, **k: None)
    ckpt = tmp_path / "ckpt.mg"
    train_cluster_vae(X, 3, 0, "cpu", 1, init="glorot", checkpoint=ckpt, **kw)
    with pytest.raises(ValueError, match="written with the settings"):
        train_cluster_vae(X, 3, 0, "cpu", 2, checkpoint=ckpt, **kw)
    with pytest.raises(ValueError, match="init must be"):
        train_cluster_vae(X, 3, 0, "cpu", 1, init="he", **kw)


def test_with_val_trains_on_all_60000_training_images_as_the_seed(tmp_path, monkeypatch):
    """``--with-val`` appends the validation split: MNIST's 50k training images, then its 10k validation ones, as
    Keras' loader gives all 60k; the default keeps the 50k split, and the choice is recorded in the config."""
    from examples.common import load_or_digits
    from examples.vae_cluster import main as vae_main
    pytest.importorskip("matplotlib", reason="examples need the 'examples' extra")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    try:
        Xtr, ytr, Xte, yte, used = load_or_digits("mnist", with_val=True)
    except DatasetNotFound:
        pytest.skip(DOWNLOAD_FAILED)
    if used != "mnist":
        pytest.skip(DOWNLOAD_FAILED)
    X50, y50 = load_or_digits("mnist")[:2]
    assert Xtr.shape == (60000, 1, 28, 28) and ytr.shape == (60000,) and Xte.shape[0] == 10000
    assert len(X50) == 50000 and (Xtr[:50000] == X50).all() and (ytr[:50000] == y50).all()
    assert np.bincount(ytr[50000:], minlength=10).min() > 800       # the validation images, every class
    vae_main(["--quick", "--with-val", "--datasets", "mnist", "--out", str(tmp_path)])
    config = json.loads((tmp_path / "results.json").read_text())["config"]
    assert config["with_val"] is True
