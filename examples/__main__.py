"""The launcher: ``python -m examples list | run NAME [--device cpu|cuda] [--quick] | demo``."""
import argparse
import json
import sys
import time
from pathlib import Path

from examples import DEMO, discover


def _headline(metrics):
    """The first few numeric metrics of a result, for the summary table."""
    items = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:4])


def run_one(module, args, quick):
    out = Path(args.out) / module.NAME
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    extra = {"distributed": True} if getattr(args, "distributed", False) else {}
    metrics = module.run(device=args.device, quick=quick, out_dir=str(out), seed=args.seed, **extra)
    metrics = dict(metrics or {})
    metrics.setdefault("seconds", round(time.perf_counter() - start, 1))
    if _main_rank():
        (out / "results.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def _main_rank():
    from minigrad import distributed
    return not distributed.is_initialized() or distributed.get_rank() == 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m examples", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the examples")
    for name in ("run", "demo"):
        p = sub.add_parser(name, help="run one example" if name == "run" else
                           f"train {DEMO} in full, then a quick tour of every other example")
        if name == "run":
            p.add_argument("name")
            p.add_argument("--distributed", action="store_true",
                           help="data-parallel over the ranks of `mpiexec -n N` (cnn_digits, capsule_two_digits)")
        p.add_argument("--device", default="cpu")
        p.add_argument("--quick", action="store_true", help="seconds-long smoke run")
        p.add_argument("--out", default="runs")
        p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    examples = discover()
    if args.cmd == "list":
        width = max(map(len, examples), default=0)
        for name, module in examples.items():
            print(f"{name:<{width}}  {module.DESCRIPTION}")
        return 0
    if args.cmd == "run":
        if args.name not in examples:
            print(f"unknown example {args.name!r}; choose from: {', '.join(examples)}", file=sys.stderr)
            return 2
        metrics = run_one(examples[args.name], args, args.quick)
        print(json.dumps(metrics, indent=2, default=float))
        return 0
    rows = []
    order = [DEMO] + [n for n in examples if n != DEMO] if DEMO in examples else list(examples)
    for name in order:
        quick = args.quick or name != DEMO
        print(f"\n=== {name} ({'quick' if quick else 'full'}) ===")
        try:
            rows.append((name, "quick" if quick else "full", _headline(run_one(examples[name], args, quick))))
        except Exception as e:  # one broken example must not hide the others' results
            rows.append((name, "FAILED", f"{type(e).__name__}: {e}"))
    print("\n| example | mode | result |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    return 1 if any(r[1] == "FAILED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
