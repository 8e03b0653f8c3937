"""Two versions of minigrad side by side: step time and peak memory of the MLP, CNN and Transformer encoder-layer
training steps and of a 100,000-node backward, for a "before" tree and an "after" tree, in one run.

``python -m benchmarks.before_after --before PATH [--after PATH] [--rounds 5]`` where each PATH is the root of a
checkout (``git worktree add --detach /tmp/before <commit>`` makes one). Every measurement runs in a fresh
process started in that root, so ``import minigrad`` is that tree's; rounds alternate which tree goes first, so
a change of load on a shared machine hits both alike. Each process runs the workload's warm-up, then times
``--steps`` steps in CPU time (``time.process_time``: a process waiting for a core is not charged), then one more
step under ``tracemalloc`` for its peak (NumPy reports its buffers to tracemalloc). The 100k-node graph is
timed as its backward alone, and its memory is the growth of the process's peak RSS (VmHWM) while the graph is
built and walked, as in ``python -m benchmarks``. The table reports medians over rounds of each process's median.

Writes docs/benchmarks/before-after.md and the same text between the ``before-after`` markers of
docs/benchmarks.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.common import ROOT, machine, markdown_table, today

WORKLOADS = ["mlp", "cnn", "encoder", "graph"]
TITLES = {"mlp": "MLP 784-256-256-10, batch 128, Adam step", "cnn": "CNN conv16-pool-conv32-pool-linear, 64×1×28×28, "
          "Adam step", "encoder": "Transformer encoder layer B=32, T=128, d=256, h=8, ff 1024, forward + backward",
          "graph": "backward of a 100,000-node chain on a (16,) float64 vector"}
MARKERS = ("<!-- before-after:start -->", "<!-- before-after:end -->")

# Runs inside the measured tree: only minigrad's public API, spelled the same in both versions.
WORKER = r'''
import json, re, sys, time, tracemalloc
import numpy as np
import minigrad as mg
from minigrad import nn
from minigrad.optim import Adam
kind, steps = sys.argv[1], int(sys.argv[2])

def kib(key):
    return int(re.search(key + r":\s+(\d+)", open("/proc/self/status").read()).group(1))

def report(times, peak):
    print(json.dumps([float(np.median(times)), peak]))

if kind == "graph":
    rss0 = kib("VmRSS")
    x = mg.tensor(np.linspace(0, 1, 16), requires_grad=True)
    y = x
    for i in range(100_000):
        y = y * 1.0001 if i % 2 else y + 0.5
    c = time.process_time()
    y.backward(mg.ones_like(y))
    report([time.process_time() - c], (kib("VmHWM") - rss0) * 1024)
    sys.exit()

rng = np.random.default_rng(0)
if kind == "mlp":
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    xb, yb = mg.tensor(rng.random((128, 784), dtype=np.float32)), mg.tensor(rng.integers(0, 10, 128))
    loss = lambda: mg.cross_entropy(model(xb), yb)
elif kind == "cnn":
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    xb, yb = mg.tensor(rng.random((64, 1, 28, 28), dtype=np.float32)), mg.tensor(rng.integers(0, 10, 64))
    loss = lambda: mg.cross_entropy(model(xb), yb)
else:
    try:
        from minigrad.models.attention import TransformerEncoderLayer
    except ImportError:  # the layout before the models package moved under minigrad
        from models.attention import TransformerEncoderLayer
    model = TransformerEncoderLayer(256, 8, 1024, dropout=0.0, batch_first=True)  # the suite's layer
    xb = mg.tensor(rng.standard_normal((32, 128, 256), dtype=np.float32))
    G = mg.tensor(rng.standard_normal((32, 128, 256), dtype=np.float32))
    loss = lambda: (model(xb) * G).sum()
opt = Adam(model.parameters(), lr=1e-3)

def step():
    opt.zero_grad()
    loss().backward()
    opt.step()

step()
step()
times = []
for _ in range(steps):
    c = time.process_time()
    step()
    times.append(time.process_time() - c)
opt.zero_grad()
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
tracemalloc.reset_peak()
loss().backward()
peak = tracemalloc.get_traced_memory()[1] - base
tracemalloc.stop()
report(times, peak)
'''


def measure(tree, kind, steps):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-c", WORKER, kind, str(steps)], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} in {tree} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load():
    return os.getloadavg()[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="root of the 'before' checkout")
    p.add_argument("--after", default=str(ROOT), help="root of the 'after' checkout (default: this one)")
    p.add_argument("--label-before", default=None)
    p.add_argument("--label-after", default=None)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "before-after.md"))
    args = p.parse_args(argv)
    trees = {"before": str(Path(args.before).resolve()), "after": str(Path(args.after).resolve())}
    labels = {t: getattr(args, f"label_{t}") or commit(trees[t]) for t in trees}
    results = {(k, t): [] for k in WORKLOADS for t in trees}
    load_before = load()
    for r in range(args.rounds):
        order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        for kind in WORKLOADS:
            for t in order:
                results[(kind, t)].append(measure(trees[t], kind, args.steps))
                print(f"round {r + 1}/{args.rounds} {kind:8s} {t:6s} {results[(kind, t)][-1]}", flush=True)
    load_after = load()
    rows = []
    for kind in WORKLOADS:
        tb = statistics.median(x[0] for x in results[(kind, "before")])
        ta = statistics.median(x[0] for x in results[(kind, "after")])
        mb = statistics.median(x[1] for x in results[(kind, "before")])
        ma = statistics.median(x[1] for x in results[(kind, "after")])
        rows.append([TITLES[kind], f"{tb * 1e3:,.1f}", f"{ta * 1e3:,.1f}", f"{(ta / tb - 1) * 100:+.1f} %",
                     f"{mb / 2 ** 20:,.1f}", f"{ma / 2 ** 20:,.1f}", f"{(ma / mb - 1) * 100:+.1f} %"])
    text = (f"# Before and after: explicit saved tensors\n\n"
            f"Measured {today()} on {machine()}, by `python -m benchmarks.before_after` ({args.rounds} rounds, "
            f"{args.steps} timed steps per process, one BLAS thread). Before: {labels['before']}; after: "
            f"{labels['after']}. The machine is shared with other jobs (load average {load_before:.1f} before and "
            f"{load_after:.1f} after the run): times are CPU time of the measuring process, rounds alternate "
            f"which version goes first, and the figures are medians over rounds.\n\n"
            + markdown_table(["workload", "before ms", "after ms", "time change", "before peak MiB",
                              "after peak MiB", "memory change"], rows)
            + "\n\nPeak memory: for the training steps, the peak NumPy allocation (tracemalloc) of one forward and "
              "backward above its start; for the graph, the growth of the process's peak RSS while the 100k-node "
              "graph is built and walked.\n")
    print("\n" + text)
    Path(args.out).write_text(text)
    splice(ROOT / "docs" / "benchmarks.md", text)


def commit(tree):
    out = subprocess.run(["git", "-C", tree, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    line = out.stdout.strip()
    return f"`{line[:7]}` ({line[8:70]}…)" if line else tree


def splice(path, text):
    """Put ``text`` between the before-after markers of ``path`` (added before the engine section if absent)."""
    page = path.read_text()
    block = f"{MARKERS[0]}\n{text.replace('# Before and after', '## Before and after', 1)}{MARKERS[1]}"
    if MARKERS[0] in page:
        start, end = page.index(MARKERS[0]), page.index(MARKERS[1]) + len(MARKERS[1])
        page = page[:start] + block + page[end:]
    else:
        at = page.index("## Engine") if "## Engine" in page else len(page)
        page = page[:at] + block + "\n\n" + page[at:]
    path.write_text(page)


if __name__ == "__main__":
    main()
