"""Capsule lengths at initialisation, before any training: ``python -m docs.gen_capsule_init``.

For the trunks and capsule-weight scales of the two-digit experiment (docs/derivations/capsule.md §5), the class
scores (capsule lengths) of untrained heads on a batch of training digits, as training sees them (training mode:
batch statistics in batch norm), seeds 0–3 and the three routings. It shows where each setup starts on the squash
curve: near length 1 the length hardly moves with ‖s‖ and the margin loss cannot pull it down. No training; a few
seconds of CPU per setup. Writes the ``capsinit`` section of docs/derivations/capsule.md.
"""
import datetime
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

import minigrad as mg
from minigrad import data
from minigrad.models.capsule import VARIANTS

from benchmarks.common import splice
from examples.capsule_two_digits import make

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "derivations" / "capsule.md"
SEEDS, BATCH, J, OUT_DIM, C = (0, 1, 2, 3), 256, 10, 16, 0.5


def first_version_scale(in_dim):
    """The factor by which the first version's Glorot bound, counting the fans of one in_dim → out_dim map, exceeds
    today's, which counts the whole in_dim → J·out_dim kernel as Keras does."""
    return math.sqrt((in_dim + J * OUT_DIM) / (in_dim + OUT_DIM))


# (what, trunk, channels, w_scale relative to the first version's bound (None: today's bound, w_scale 1))
SETUPS = [("first version: `--trunk bn`, per-map Glorot bound", "bn", (32, 32, 64), 1.0),
          ("first version's ablation: the same, weights × 0.3", "bn", (32, 32, 64), 0.3),
          ("`--trunk bn`, today's bound (run `ablation-bn-trunk`)", "bn", (32, 32, 64), None),
          ("seed's trunk, per-map Glorot bound", "seed", (64, 128), 1.0),
          ("seed's trunk, today's bound (run `full-kmeans`)", "seed", (64, 128), None),
          ("seed's trunk at a quarter width, today's bound (run `robustness`)", "seed", (16, 32), None)]


def slope(length):
    """d‖v‖/d‖s‖ of the squash at a given length ‖v‖ = q/(c+q), q = ‖s‖²."""
    q = C * length / (1.0 - length)
    return 2.0 * C * np.sqrt(q) / (C + q) ** 2


def lengths(kind, channels, scale, X):
    """Class scores (seed, routing) → (BATCH, J) of an untrained capsule head, in training mode."""
    out = {}
    for s in SEEDS:
        mg.manual_seed(s)
        model = make("capsule-kmeans", channels, False, scale, kind)
        model.train()
        x = X[np.random.default_rng(s).permutation(len(X))[:BATCH]]   # the example's first batch of seed s
        with mg.no_grad():
            u = model.capsules_in(mg.tensor(x))
            for variant in VARIANTS:
                model.caps.routing = variant
                out[s, variant] = np.linalg.norm(model.caps(u).numpy(), axis=-1)
    return out


def main():
    d = data.load_mnist(download=True)
    X = np.concatenate([d["train"][0], d["val"][0]]).astype(np.float32)
    t0 = time.time()
    rows = []
    for what, kind, channels, rel in SETUPS:
        scale = 1.0 if rel is None else rel * first_version_scale(channels[-1])
        S = lengths(kind, channels, scale, X)
        every = np.concatenate([v.ravel() for v in S.values()])
        per_seed = " / ".join(f"{np.mean([S[s, v].mean() for v in VARIANTS]):.3f}" for s in SEEDS)
        rows.append(f"| {what} | {scale:.2f} | {per_seed} | {every.min():.3f}–{every.max():.3f} | "
                    f"{np.mean(every > 0.9) * 100:.1f} % | {slope(np.minimum(every, 1 - 1e-12)).mean():.3f} |")
    load = os.getloadavg()[1] if hasattr(os, "getloadavg") else float("nan")
    text = "\n".join([
        "| setup | capsule weights × today's bound | mean length, seeds 0 / 1 / 2 / 3 | smallest–largest length | "
        "lengths > 0.9 | mean slope d‖v‖/d‖s‖ |", "|---|---|---|---|---|---|", *rows, "",
        f"Untrained heads, {BATCH} training digits per seed (the example's first batch), the three routings pooled; "
        f"computed {datetime.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores visible "
        f"(load average {load:.1f}), Python {platform.python_version()}, NumPy {np.__version__}, in "
        f"{time.time() - t0:.0f} s, by `python -m docs.gen_capsule_init`."])
    splice(PAGE, "capsinit", text)


if __name__ == "__main__":
    main()
