"""Run the benchmark suite: ``python -m benchmarks [--device cuda] [--quick] [--no-models]``.

Prints each table and writes ``docs/benchmarks.md`` (machine, versions, date; median and min–max of repeated
runs; every ratio is between numbers measured in this one run). Peers are optional: a peer that does not
import is reported as absent, never as a number. ``bash benchmarks/make_env.sh`` builds a separate virtual
environment with every peer (benchmarks/requirements.txt); minigrad itself depends on none of them.
"""
import os
import sys

if __name__ == "__main__":  # thread pools are sized when NumPy/PyTorch load: decide before importing them
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import argparse
import datetime
import importlib
import json
import platform
import subprocess
from pathlib import Path

import numpy as np

from benchmarks import core
from benchmarks.common import ROOT, machine, markdown_table

PEERS = ["numpy", "torch", "autograd", "mygrad", "micrograd"]


def available(engine):
    if engine in ("minigrad", "numpy"):
        return True
    try:
        importlib.import_module({"micrograd": "micrograd.engine"}.get(engine, engine))
        return True
    except Exception:
        return False


def versions():
    from importlib import metadata
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("torch", "autograd", "mygrad", "micrograd", "pytorch-crf", "cupy-cuda12x", "cupy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def fmt_us(s):
    return f"{s * 1e6:,.1f}"


def table(title, header, rows):
    text = f"### {title}\n\n{markdown_table(header, rows)}\n"
    print("\n" + text, flush=True)
    return text


def bench_chain(device, quick, results):
    """Chains of n ops at three sizes; ``results[("chain", label, engine)]`` = fwd+bwd seconds per op."""
    sections = []
    n = 100 if quick else 1000
    for shape, label in [((), "0-d"), ((64, 64), "64×64"), ((1024, 1024), "1024×1024")]:
        rows = []
        engines = ["minigrad"] + ([] if device.startswith("cuda") else PEERS)
        if device.startswith("cuda"):
            engines.append("torch")
        base = {}
        for engine in engines:
            if not available(engine):
                rows.append([engine, "not installed", "", "", ""])
                continue
            fwd = core.chain(engine, shape, n, False, device)
            if fwd is None:
                continue
            repeat = 3 if shape == (1024, 1024) else 7
            f = core.timing(fwd, repeat=repeat)
            b = core.timing(core.chain(engine, shape, n, True, device), repeat=repeat)
            base.setdefault("minigrad", b[0])
            results[("chain", label, engine)] = b[0] / n
            rows.append([engine, fmt_us(f[0] / n), fmt_us(b[0] / n),
                         f"{fmt_us(b[1] / n)}–{fmt_us(b[2] / n)}", f"{b[0] / base['minigrad']:.2f}"])
        sections.append(table(f"Chain of {n} `y = y * 1.0001`, {label} float32 ({device})",
                              ["engine", "forward µs/op", "forward+backward µs/op", "fwd+bwd min–max",
                               "time ÷ minigrad"], rows))
    return "\n".join(sections)


def bench_step(kind, device, quick, results):
    maker = core.mlp_step if kind == "mlp" else core.cnn_step
    engines = ["minigrad", "numpy", "torch", "autograd", "mygrad"] if kind == "mlp" else ["minigrad", "torch"]
    if device.startswith("cuda"):
        engines = ["minigrad", "torch"]
    rows, base = [], None
    for engine in engines:
        if not available(engine):
            rows.append([engine, "not installed", "", ""])
            continue
        try:
            step = maker(engine, device)
        except (ImportError, AttributeError) as e:
            rows.append([engine, f"unavailable ({e})", "", ""])
            continue
        if step is None:
            continue
        med, lo, hi, k = core.timing(step, repeat=5 if quick else 15)
        if engine == "minigrad":
            base = med
        results[(kind, engine)] = med
        rows.append([engine, f"{med * 1e3:.2f}", f"{lo * 1e3:.2f}–{hi * 1e3:.2f}",
                     f"{med / base:.2f}" if base else ""])
    title = ("MLP 784-256-256-10, batch 128, one Adam training step" if kind == "mlp" else
             "CNN (conv16-pool-conv32-pool-linear) on 64×1×28×28, one Adam training step")
    return table(f"{title} ({device})", ["engine", "median ms", "min–max ms", "time ÷ minigrad"], rows)


def bench_graph(results):
    rows = []
    for engine in ["minigrad", "torch", "mygrad", "autograd", "micrograd"]:
        if not available(engine):
            rows.append([engine, "not installed", ""])
            continue
        # VmHWM (this process's peak RSS) rather than ru_maxrss, which a child inherits from its parent
        code = ("import json, re; from benchmarks.core import big_graph;"
                "kib = lambda k: int(re.search(k + r':\\s+(\\d+)', open('/proc/self/status').read()).group(1));"
                "rss0 = kib('VmRSS');"
                f"t = big_graph({engine!r});"
                "print(json.dumps([t, (kib('VmHWM') - rss0) / 1024]))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            err = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
            rows.append([engine, f"fails: {err[:60]}", ""])
            continue
        t, mem = json.loads(proc.stdout.strip().splitlines()[-1])
        results[("graph", engine)] = t
        rows.append([engine, f"{t * 1e3:,.0f}", f"{mem:,.0f}"])
    return table(f"Backward of a {core.GRAPH_NODES:,}-node graph (chain on a (16,) float64 vector, cpu)",
                 ["engine", "backward ms", "peak RSS growth MiB (graph + backward)"], rows)


def model_benchmarks(device, results):
    """Run each model's own benchmark script; they write docs/benchmarks/<name>.md (the attention script
    also its encoder-layer times, for the targets table). This page links to them."""
    parts = []
    layer_json = ROOT / "benchmarks" / ".attention-layer.json"
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        cmd = [sys.executable, str(script)] + (["--device", device] if device != "cpu" else [])
        if script.name == "bench_attention.py":
            cmd += ["--json", str(layer_json)]
        print(f"\n=== {script.name} ===", flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, text=True, timeout=3600)
        if proc.returncode != 0:
            parts.append(f"### {script.stem}\n\nfailed in this run (exit {proc.returncode}).\n")
    if layer_json.exists():
        for name, seconds in json.loads(layer_json.read_text()).items():
            results[("encoder", name)] = seconds
        layer_json.unlink()
    return "\n".join(parts) + model_pages(device)


def model_pages(device):
    """One link per model page the scripts wrote (each page is the one home of its numbers and its reading)."""
    on_gpu = device.startswith("cuda")
    spliced = ("before-after", "func")  # their sections are on this page already
    pages = [p for p in sorted((ROOT / "docs" / "benchmarks").glob("*.md"))
             if p.stem.endswith("-cuda") == on_gpu and p.stem.removesuffix("-cuda") not in spliced]
    return "".join(f"- [{p.read_text().splitlines()[0].lstrip('# ')}](benchmarks/{p.name})\n" for p in pages)


PEER_WORKLOADS = [(("chain", "0-d"), "0-d chain"), (("chain", "64×64"), "64×64 chain"),
                  (("chain", "1024×1024"), "1024×1024 chain"), (("mlp",), "MLP step"),
                  (("graph",), "100k-node backward")]


def _ratio(results, a, b):
    return results[a] / results[b] if a in results and b in results else None


def targets(results, device):
    """The issue's targets, judged from the numbers of this run."""
    rows = []

    def judge(ok):
        return "met" if ok else "**missed**"
    if device == "cpu":
        op = results.get(("chain", "64×64", "minigrad"))
        if op is not None:
            extra = ", ".join(f"{name} {results[('chain', '64×64', e)] * 1e6:.1f}" for e, name in
                              (("torch", "PyTorch"), ("numpy", "raw NumPy")) if ("chain", "64×64", e) in results)
            rows.append(["per-op forward+backward ≤ 8 µs (64×64 chain)", f"{op * 1e6:.1f} µs ({extra})",
                         judge(op <= 8e-6)])
        r = _ratio(results, ("mlp", "minigrad"), ("mlp", "numpy"))
        if r is not None:
            rows.append(["MLP step ≤ 1.15× the raw-NumPy floor", f"{results[('mlp', 'minigrad')] * 1e3:.2f} / "
                         f"{results[('mlp', 'numpy')] * 1e3:.2f} ms = {r:.2f}×", judge(r <= 1.15)])
        r = _ratio(results, ("cnn", "minigrad"), ("cnn", "torch"))
        if r is not None:
            rows.append(["CNN step ≤ 1.5× PyTorch CPU", f"{results[('cnn', 'minigrad')] * 1e3:.2f} / "
                         f"{results[('cnn', 'torch')] * 1e3:.2f} ms = {r:.2f}×", judge(r <= 1.5)])
        groups = {"slower peers": [], "ties (within 2 %)": [], "**faster peers**": []}
        for key, label in PEER_WORKLOADS:
            for peer in ("autograd", "mygrad", "micrograd"):
                r = _ratio(results, key + (peer,), key + ("minigrad",))
                if r is not None:
                    group = "slower peers" if r > 1.02 else "ties (within 2 %)" if r >= 0.98 else "**faster peers**"
                    groups[group].append(f"{peer} {label} {r:.2f}×")
        rows.append(["faster than every educational peer on every workload it runs (peer time ÷ minigrad time)",
                     "; ".join(f"{g}: {', '.join(v)}" for g, v in groups.items() if v),
                     judge(len(groups["slower peers"]) == sum(map(len, groups.values())))])
    else:
        for kind, label in (("mlp", "MLP step"), ("cnn", "CNN step")):
            r = _ratio(results, (kind, "minigrad"), (kind, "torch"))
            if r is not None:
                rows.append([f"{label} ≤ 2× PyTorch CUDA", f"{results[(kind, 'minigrad')] * 1e3:.2f} / "
                             f"{results[(kind, 'torch')] * 1e3:.2f} ms = {r:.2f}×", judge(r <= 2)])
    r = _ratio(results, ("encoder", "minigrad fused"), ("encoder", "PyTorch"))
    if r is not None:
        limit = 1.5 if device == "cpu" else 2.0
        mine, theirs = results[("encoder", "minigrad fused")], results[("encoder", "PyTorch")]
        rows.append([f"encoder layer (dropout 0) ≤ {limit:g}× PyTorch", f"{mine * 1e3:.1f} / {theirs * 1e3:.1f} ms"
                     f" = {r:.2f}×", judge(r <= limit)])
    if not rows:
        return ""
    lines = ["## Targets, judged from this run", "", "| target | measured | |", "|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n\n"


NOTES = ("<!-- notes:start -->", "<!-- notes:end -->")


def kept_notes(path):
    """The hand-written analysis between the notes markers of the previous page, kept across regenerations."""
    try:
        text = Path(path).read_text()
        start, end = text.index(NOTES[0]), text.index(NOTES[1]) + len(NOTES[1])
        return text[start:end] + "\n\n"
    except (OSError, ValueError):
        return f"{NOTES[0]}\n{NOTES[1]}\n\n"


def kept_distributed(path):
    """The data-parallel section that ``python -m benchmarks.bench_distributed`` wrote, kept across regenerations."""
    try:
        text = Path(path).read_text()
        start = text.index("<!-- distributed:start -->")
        return "\n\n" + text[start:text.index("<!-- distributed:end -->") + len("<!-- distributed:end -->")] + "\n"
    except (OSError, ValueError):
        return ""


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="fewer ops and repeats, no model scripts (smoke test)")
    p.add_argument("--no-models", action="store_true", help="skip the model benchmark scripts")
    p.add_argument("--out", default=None, help="default docs/benchmarks.md (docs/benchmarks-cuda.md on a GPU)")
    p.add_argument("--threads", default="1", help="BLAS/OpenMP threads for every engine (default 1: equal "
                   "footing, and stable timings on a shared machine)")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = str(ROOT / "docs" / ("benchmarks.md" if args.device == "cpu" else "benchmarks-cuda.md"))
    try:
        import torch
        torch.set_num_threads(int(args.threads))
    except ImportError:
        pass
    date = datetime.date.today().isoformat()
    head = (f"# Benchmarks\n\nMeasured {date} on {machine(args.device)}; versions: "
            + ", ".join(f"{k} {v}" for k, v in versions().items())
            + f"; {args.threads} BLAS/OpenMP thread(s) for every engine"
            + ".\n\nEach figure is the median of repeated runs (min–max beside it); ratios compare numbers from "
              "this same run. Regenerate with `bash benchmarks/make_env.sh && .venv-bench/bin/python -m benchmarks` "
              "(the peers live in that separate environment; add `--device cuda` on a GPU).\n\n")
    results = {}
    body = [bench_chain(args.device, args.quick, results),
            bench_step("mlp", args.device, args.quick, results),
            bench_step("cnn", args.device, args.quick, results)]
    if not args.device.startswith("cuda"):
        body.append(bench_graph(results))
    if not (args.no_models or args.quick):  # model scripts write their own docs pages: full runs only
        body.append("## Model ops: fused (hand-written backward) vs composed\n\n" +
                    model_benchmarks(args.device, results))
    summary = targets(results, args.device)
    print("\n" + summary)
    kept = kept_distributed(args.out)
    Path(args.out).write_text(head + summary + kept_notes(args.out) + "## Engine\n\n" + "\n".join(body) + kept)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
