"""Regenerate the measured sections of docs/testing.md: the gradient accuracy each op spec reaches, and the
mutation gate's score and time (from a JSON file written by ``python -m minigrad.testing.mutation --json``).

    python -m docs.gen_testing_numbers --gate gate.json          # run from the repository root
"""
import argparse
import datetime
import json
import os
import platform
import re

import numpy as np
from hypothesis import HealthCheck, given, settings

import minigrad as mg
from minigrad.testing import spec_inputs
from minigrad.testing.op_specs import SPECS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PAGE = os.path.join(ROOT, "docs", "testing.md")


def machine():
    return (f"{datetime.date.today().isoformat()}, {platform.machine()} {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, NumPy {np.__version__}")


def spec_accuracy(spec, examples):
    """Over the spec's drawn inputs, numeric (Richardson) vs analytic Jacobian: the smallest rtol that passes
    at the spec's atol, max (|n − a| − atol)/|n|, and the worst absolute difference."""
    worst = dict(rel=0.0, abs=0.0, rel3=0.0)

    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(spec_inputs(spec))
    def measure(xs):
        ts = [mg.Tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in xs]
        for _, J, Ja in mg.gradcheck_jacobians(spec.op, ts, eps=spec.grad_eps):
            if not J.size:
                continue
            diff = np.abs(J - Ja)
            worst["abs"] = max(worst["abs"], float(diff.max()))
            big = np.abs(J) >= 1e-3
            if big.any():
                worst["rel3"] = max(worst["rel3"], float((diff[big] / np.abs(J[big])).max()))
            excess = np.maximum(diff - spec.grad_atol, 0)
            nz = excess > 0
            if nz.any():
                worst["rel"] = max(worst["rel"], float((excess[nz] / np.maximum(np.abs(J[nz]), 1e-300)).max()))
    measure()
    return worst


def accuracy_table(examples):
    rows = ["| op spec | worst \\|numeric − analytic\\| | worst relative difference where \\|J\\| ≥ 1e-3 | "
            "smallest rtol that passes at the spec's atol | rtol / atol of the spec |",
            "|---|---|---|---|---|"]
    worst_all = worst_rel3 = 0.0
    for spec in SPECS:
        w = spec_accuracy(spec, examples)
        worst_all, worst_rel3 = max(worst_all, w["rel"]), max(worst_rel3, w["rel3"])
        rows.append(f"| `{spec.name}` | {w['abs']:.1e} | {w['rel3']:.1e} | {w['rel']:.1e} | "
                    f"{spec.grad_rtol:g} / {spec.grad_atol:g} |")
    head = (f"Measured {machine()}: {examples} derandomized examples per spec (the `ci` profile's), numeric "
            f"Jacobian from Richardson-refined central differences (step `grad_eps·max(1, |x|)`, `grad_eps = 1e-4`) "
            f"against the analytic one (first derivatives). Worst relative difference over all specs where "
            f"|J| ≥ 1e-3: **{worst_rel3:.1e}**; the largest rtol any spec needs at its atol: **{worst_all:.1e}** "
            f"(0: every element is within the atol alone). The specs run at `rtol=1e-6`, `atol=1e-9`.")
    return head + "\n\n" + "\n".join(rows)


def gate_section(path):
    with open(path) as f:
        g = json.load(f)
    rows = ["| mutant | the bug | caught by | seconds |", "|---|---|---|---|"]
    for r in g["results"]:
        by = f"`{r['caught_by']}`" if r["caught_by"] else ("**survived**" if not r["caught"] else "")
        rows.append(f"| `{r['name']}` | {r['description']} | {by} | {r['seconds']:.1f} |")
    base = (f"; the suite alone (the baseline run, PyTorch blocked, {g['workers']} workers) took "
            f"{g['baseline_seconds']:.0f} s" if g.get("baseline_seconds") else "")
    load = g.get("load_average")
    shared = (f" The machine was shared: 1-minute load average {load[0]} at the start and {load[-1]} at the end "
              f"on {g.get('cpus')} cores, so on a quiet machine expect it faster." if load else "")
    head = (f"Measured {machine()}: **{g['caught']} of {g['total']} mutants caught** in {g['seconds'] / 60:.1f} min "
            f"in total{base}.{shared}")
    return head + "\n\n" + "\n".join(rows)


def replace(text, marker, body):
    pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"docs/testing.md has no <!-- {marker}:start --> … <!-- {marker}:end --> block")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gate", help="JSON written by python -m minigrad.testing.mutation --json")
    ap.add_argument("--examples", type=int, default=12)
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    text = open(PAGE, encoding="utf-8").read()
    if not args.skip_accuracy:
        text = replace(text, "accuracy", accuracy_table(args.examples))
    if args.gate:
        text = replace(text, "mutation", gate_section(args.gate))
    with open(PAGE, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
