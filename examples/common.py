"""What every example needs besides its own story: the command line, the output folder, results.json, figures,
the MNIST fallback and batched evaluation.

The examples import it as ``examples.common``; run them from the repository root as ``python -m examples run NAME``
or ``python -m examples.NAME``.
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import minigrad as mg


def device_arg(text):
    """argparse type of --device: "cpu", "cuda" or "cuda:N", checked against this machine, so that a bad value is a
    one-line usage error before anything runs."""
    from minigrad import backend
    try:
        backend.parse_device(text)
    except (TypeError, ValueError, RuntimeError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def parser(description):
    """An argument parser with the options every example takes: --device, --quick, --out and --seed."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    p.add_argument("--out", default=None, help="output folder (default: runs/NAME)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the ranks of `mpiexec -n N` (examples that support it)")
    return p


def distributed_setup(enabled):
    """(rank, world size): joins the process group when ``enabled`` (``mpiexec -n N ... --distributed``), else
    (0, 1). Ranks other than 0 print nothing, so the job's output reads like one process's."""
    if not enabled:
        return 0, 1
    import os
    import sys
    from minigrad import distributed
    if not distributed.is_initialized():
        distributed.init_process_group()
    rank, world = distributed.get_rank(), distributed.get_world_size()
    if rank != 0:
        sys.stdout = open(os.devnull, "w")
    return rank, world


def is_main_rank():
    """False on the ranks other than 0 of a distributed run (they leave files and reports to rank 0)."""
    from minigrad import distributed
    return not distributed.is_initialized() or distributed.get_rank() == 0


def output_dir(out_dir, name):
    """The folder ``out_dir`` (default runs/``name``) as a Path, created if need be."""
    out = Path(out_dir or Path("runs") / name)
    out.mkdir(parents=True, exist_ok=True)
    return out


_STARTED = time.time()                                     # this module is imported when an example starts
_CHECKPOINT_CLOCKS = {}         # checkpoint path -> (seconds spent on it by earlier processes, when this one took over)


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return cpu


def run_meta():
    """Where and when a result was measured: date (UTC), machine, CPU count, Python and NumPy versions, the
    command line and the wall time: since the example started, plus what earlier processes of a resumed run spent
    (``earlier_processes_seconds``, carried by the checkpoints)."""
    cpu = cpu_model()
    earlier = sum(before for before, _ in _CHECKPOINT_CLOCKS.values())
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores ({cpu})",
            "python": platform.python_version(), "numpy": np.__version__,
            "command": command_line(), "wall_seconds": round(time.time() - _STARTED + earlier, 1),
            **({"earlier_processes_seconds": round(earlier, 1)} if earlier else {}),
            "load_average": [round(x, 1) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def command_line():
    """This process's command line as one would type it in the repository root (``python -m examples ...`` when
    started through the launcher)."""
    script = Path(sys.argv[0]).resolve()
    root = Path(__file__).resolve().parent.parent
    typed = getattr(sys, "orig_argv", [])  # the interpreter's own arguments: `-m module` shows there
    if "-m" in typed[1:-1]:
        head = ["python", "-m", typed[typed.index("-m", 1) + 1]]
    elif script == root / "examples" / "__main__.py":
        head = ["python", "-m", "examples"]
    else:
        head = ["python", str(script.relative_to(root)) if script.is_relative_to(root) else sys.argv[0]]
    return " ".join(head + sys.argv[1:])


def save_results(out_dir, metrics, name="results.json"):
    """Write ``metrics`` to ``out_dir``/``name`` (rank 0 only in a distributed run), with a "meta" entry added to
    ``metrics`` (``run_meta``) unless it has one, so that the returned metrics carry it too."""
    metrics.setdefault("meta", run_meta())
    if is_main_rank():
        (Path(out_dir) / name).write_text(json.dumps(metrics, indent=2, default=float))


def checkpoint_generators(device, **generators):
    """The random generators a checkpoint keeps: ``generators`` (name → numpy Generator), plus minigrad's host
    generator as "noise" when the run is on the CPU (a GPU generator's state is not saved)."""
    if mg.backend.parse_device(device) == "cpu":
        generators["noise"] = mg.backend.generator("cpu")
    return generators


def save_checkpoint(path, settings, epoch, objects, generators, **extra):
    """Write a training checkpoint to ``path``: ``settings`` (a string the resuming run must match), ``epoch``,
    the state_dict of each of ``objects`` (name → model, optimizer, EMA), each generator's state, ``extra`` and
    the seconds spent on it so far, by this process and the earlier ones it resumed."""
    before, since = _CHECKPOINT_CLOCKS.get(str(path), (0.0, _STARTED))
    mg.save({"settings": settings, "epoch": epoch, "objects": {k: o.state_dict() for k, o in objects.items()},
             "generators": {k: json.dumps(g.bit_generator.state) for k, g in generators.items()}, "extra": extra,
             "seconds": before + time.time() - since}, path)


def resume_checkpoint(path, settings, device, objects, generators, who):
    """Restore a checkpoint written by ``save_checkpoint`` into ``objects`` and ``generators``; returns (epoch,
    extra), or (0, None) when ``path`` is None or missing. A checkpoint of other settings is an error (``who``
    names the caller)."""
    if path is None or not Path(path).exists():
        if path is not None:
            _CHECKPOINT_CLOCKS[str(path)] = (0.0, time.time())
        return 0, None
    state = mg.load(path, device=device)
    if state["settings"] != settings:
        raise ValueError(f"{who}: checkpoint {path} was written with the settings {state['settings']}, this run "
                         f"has {settings}; delete it or choose another --out")
    for k, o in objects.items():
        o.load_state_dict(state["objects"][k])
    for k, g in generators.items():
        if k in state["generators"]:
            g.bit_generator.state = json.loads(state["generators"][k])
    _CHECKPOINT_CLOCKS[str(path)] = (float(state.get("seconds", 0.0)), time.time())
    return int(state["epoch"]), state["extra"]


def pyplot():
    """matplotlib.pyplot drawing into files only (the Agg backend); imported when an example first draws."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


_figures = {"write": True, "written": []}


@contextlib.contextmanager
def figures(write):
    """Within, ``save_figure`` writes files only when ``write`` (a smoke run's figures would show noise); yields
    the list of files written inside."""
    saved, _figures["write"], _figures["written"] = dict(_figures), bool(write), []
    try:
        yield _figures["written"]
    finally:
        _figures.update(saved)


def save_figure(fig, path, dpi=110):
    """Save ``fig`` to ``path`` and close it; returns the path as a string (None when figures are off)."""
    import matplotlib.pyplot as plt
    if not _figures["write"]:
        plt.close(fig)
        return None
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    _figures["written"].append(str(path))
    return str(path)


def load_or_digits(name, with_val=False):
    """(X_train, y_train, X_test, y_test, name used) from ``minigrad.data.load_<name>`` (mnist, fashion_mnist,
    digits), fetched into the cache if need be; scikit-learn's 8×8 digits, with a printed notice, when that data set
    cannot be had (offline). ``with_val=True`` appends the validation split to the training images (MNIST and
    Fashion-MNIST: all 60,000, as Keras' loaders give them)."""
    from minigrad import data
    try:
        d = data.load_digits() if name == "digits" else getattr(data, f"load_{name}")(download=True)
    except (ImportError, OSError) as e:  # DatasetNotFound is an OSError
        if name == "digits":
            raise
        print(f"notice: {name} is not available ({type(e).__name__}: {e}); falling back to the 8x8 digits")
        name, d = "digits", data.load_digits()
    if with_val and "val" in d:
        return (*(np.concatenate(pair) for pair in zip(d["train"], d["val"])), *d["test"], name)
    return (*d["train"], *d["test"], name)


def predict(model, X, device, batch_size=500, fn=None):
    """``fn`` (default: the model itself) on X in batches, in eval mode and without gradients, as one host array.
    The model's train/eval mode is restored afterwards."""
    training = model.training
    model.eval()
    with mg.no_grad():
        out = np.concatenate([(fn or model)(mg.tensor(X[i:i + batch_size], device=device)).numpy()
                              for i in range(0, len(X), batch_size)])
    model.train(training)
    return out


def mean_std(values):
    """Mean and sample standard deviation (0 for a single value) of a list of numbers, e.g. over seeds."""
    v = np.array(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def blas_threads(n):
    """A context that caps BLAS at ``n`` threads (threadpoolctl); a no-op when ``n`` is None or threadpoolctl is
    not installed. Small matrices train much faster on one thread than on threads contending on a busy CPU."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return contextlib.nullcontext() if n is None else threadpool_limits(limits=int(n))
