"""What each fast path of minigrad/core.py buys: the same workload with and without it, side by side.

``python -m benchmarks.fast_paths [--rounds 5]``. For each fast path the script copies the ``minigrad`` package
to a temporary folder, replaces the fast path's lines by the plain code it stands for, and times the workload
in fresh processes started in this checkout and in the copy, alternately (CPU time, one BLAS thread, the
median of rounds). The allocator setting of minigrad/backend.py is measured the same way, with
``MINIGRAD_MALLOC_TUNING=0`` instead of a copy. A fast path stays in the core only if it buys at least 10 % on
some workload; its comment quotes the figure printed here. The table goes between the ``fastpaths`` markers of
docs/architecture.md (``--no-write`` only prints it).
"""
import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, machine, splice

CORE = "minigrad/core.py"
PAGE = ROOT / "docs" / "architecture.md"

# name: (what it is, the workload it serves, [(the fast path's text, the plain text that replaces it)])
FAST_PATHS = {
    "constant cache": ("a Python scalar operand becomes a read-only constant once, reused by later calls",
                       "chain", [("t = _constants.get(key) if value else None", "t = None"),
                                 ("        if value:\n            if len(_constants)",
                                  "        if False:\n            if len(_constants)")]),
    "single-output gradients inline": ("run_backward takes the gradient of a one-output Function without "
                                       "calling _output_grads", "backward",
                                       [("            if len(f.outputs) == 1 and wanted_keys is None:",
                                         "            if False:")]),
    "shared needs_input_grad tuples": ("one tuple object per pattern of needs_input_grad", "graph memory",
                                       [("                needs = _flags.setdefault(needs, needs)",
                                         "                pass")]),
}
# name: (what it does, workload, environment that turns it off)
SETTINGS = {"allocator tuning": ("freed blocks up to 32 MiB go back to glibc's allocator, not to the kernel",
                                 "CNN step", {"MINIGRAD_MALLOC_TUNING": "0"})}

WORKER = r'''
import gc, json, sys, time, tracemalloc
import numpy as np
import minigrad as mg
kind = sys.argv[1]
x = mg.tensor(np.linspace(0, 1, 16), requires_grad=True)
if kind == "CNN step":
    from benchmarks import core
    step = core.cnn_step("minigrad")
    step()
    times = []
    for _ in range(15):
        c = time.process_time()
        step()
        times.append(time.process_time() - c)
    print(json.dumps(sorted(times)[len(times) // 2]))
    sys.exit()

def build(n):
    y = x
    for i in range(n):
        y = y * 1.0001 if i % 2 else y + 0.5
    return y

if kind == "graph memory":
    tracemalloc.start()
    y = build(20_000)
    print(json.dumps(tracemalloc.get_traced_memory()[0] / 20_000))
    sys.exit()
times = []
for _ in range(5):
    gc.collect()
    gc.disable()
    c = time.process_time()
    y = build(50_000)
    built = time.process_time()
    y.backward(mg.ones_like(y))
    end = time.process_time()
    gc.enable()
    times.append(end - c if kind == "chain" else end - built)
    del y
print(json.dumps(min(times)))
'''


def run(tree, kind, extra_env=None):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
               **(extra_env or {}))
    out = subprocess.run([sys.executable, "-c", WORKER, kind], cwd=tree, env=env, capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def without(name, replacements, folder):
    """A copy of the package with the fast path replaced by plain code."""
    tree = Path(folder) / name.replace(" ", "-")
    shutil.copytree(ROOT / "minigrad", tree / "minigrad", symlinks=True)
    core = tree / CORE
    text = core.read_text()
    for fast, plain in replacements:
        if fast not in text:
            raise SystemExit(f"{name}: the fast path's text is no longer in {CORE}; update FAST_PATHS")
        text = text.replace(fast, plain)
    core.write_text(text)
    return tree


def compare(fast, plain, rounds):
    """Median over ``rounds`` of plain ÷ fast, and every round's ratio; each round runs both, in turn."""
    ratios = []
    for r in range(rounds):
        if r % 2 == 0:
            f = fast()
            p = plain()
        else:
            p = plain()
            f = fast()
        ratios.append(p / f)
    return statistics.median(ratios), ratios


def table(rows, rounds):
    """The Markdown table of the page, with where and when it was measured."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    head = (f"Measured {datetime.date.today()} on {machine()}, load average {load:.1f} at the end, by "
            f"`python -m benchmarks.fast_paths` (CPU time, one BLAS thread, median of {rounds} rounds):\n\n"
            "| fast path | what it does | without it |\n|---|---|---|\n")
    return head + "\n".join(f"| {name} | {what} | {kind} {unit} ×{ratio:.2f} |" for name, what, kind, unit, ratio
                             in rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-write", action="store_true", help="print the table without writing docs/architecture.md")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, (what, kind, replacements) in FAST_PATHS.items():
            plain = without(name, replacements, folder)
            ratio, ratios = compare(lambda: run(ROOT, kind), lambda: run(plain, kind), args.rounds)
            unit = "bytes per node" if kind == "graph memory" else "time"
            rows.append((name, what, kind, unit, ratio))
            print(f"{name} ({what}): without it, {kind} {unit} x{ratio:.2f} "
                  f"(median of {args.rounds} rounds; each {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    for name, (what, kind, env) in SETTINGS.items():
        ratio, ratios = compare(lambda: run(ROOT, kind), lambda: run(ROOT, kind, env), args.rounds)
        rows.append((name, what, kind, "time", ratio))
        print(f"{name} ({what}): without it, {kind} time x{ratio:.2f} "
              f"(median of {args.rounds} rounds; each {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    text = table(rows, args.rounds)
    print(text)
    if not args.no_write:
        splice(PAGE, "fastpaths", text)


if __name__ == "__main__":
    main()
