"""The launcher: ``python -m examples list | download [NAME...] | run NAME [--device cpu|cuda] [--quick]
[example options] | demo``. Options after ``run NAME`` that the launcher does not know go to the example's own
command line (``python -m examples run capsule_two_digits --heads capsule-kmeans``; each example's ``--help``
lists them)."""
import argparse
import datetime
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

from examples import DEMO, discover
from examples.common import blas_threads, cpu_model, device_arg, figures, run_meta
from minigrad.data import DATASETS, DownloadError, download


def _headline(metrics):
    """The first few numeric metrics of a result, for the summary table."""
    items = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:4])


def run_one(module, args, quick, options=()):
    """Run one example; a quick run is a smoke run (no figures, "smoke_run": true in results.json) unless the
    example says its quick configuration shows its headline (QUICK_SHOWS_HEADLINE) and this run's numbers do.
    ``options``: the example's own command-line options, parsed by its ``main``."""
    out = Path(args.out) / module.NAME
    out.mkdir(parents=True, exist_ok=True)
    start, cpu = time.perf_counter(), time.process_time()
    designed = not quick or getattr(module, "QUICK_SHOWS_HEADLINE", False)
    extra = {"distributed": True} if getattr(args, "distributed", False) else {}
    with figures(designed) as written, blas_threads(getattr(args, "threads", 1) or None):
        if options:
            metrics = module.main(["--device", str(args.device), "--out", str(out), "--seed", str(args.seed),
                                   *(["--quick"] if quick else []), *(["--distributed"] if extra else []),
                                   *options])
        else:
            metrics = module.run(device=args.device, quick=quick, out_dir=str(out), seed=args.seed, **extra)
    metrics = dict(metrics or {})
    metrics.setdefault("seconds", round(time.perf_counter() - start, 1))
    metrics["cpu_seconds"] = round(time.process_time() - cpu, 1)
    metrics["quick"] = quick
    shown, numbers = module.headline(metrics) if hasattr(module, "headline") else (None, _headline(metrics))
    metrics["headline"] = {"claim": getattr(module, "HEADLINE", None), "shown": shown, "numbers": numbers}
    if quick and not (designed and shown):
        metrics["smoke_run"] = True
        for path in written:  # the numbers did not show the effect: its picture would mislead
            os.remove(path)
    metrics.setdefault("meta", run_meta())
    metrics["meta"]["command"] = " ".join(["python", "-m", "examples", *args.argv])  # also when called as main(argv)
    if _main_rank():
        (out / "results.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def _main_rank():
    from minigrad import distributed
    return not distributed.is_initialized() or distributed.get_rank() == 0


def machine():
    """This computer in a few words: CPU model, core count, OS, Python."""
    return f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()}, Python {platform.python_version()}"


def demo_table(rows, wall, cpu, device):
    """The demo's summary as Markdown: one row per example, then the machine, the date and the totals."""
    lines = ["| example | run | headline | measured | seconds |", "|---|---|---|---|---|"]
    for name, mode, m in rows:
        if mode == "FAILED":
            lines.append(f"| {name} | FAILED | | {m} | |")
            continue
        h = m["headline"]
        claim = h["claim"] or ""
        claim += "" if h["shown"] is None else (" — shown" if h["shown"] else " — not shown")
        lines.append(f"| {name} | {mode} | {claim} | {h['numbers']} | {m['seconds']:.0f} |")
    day = datetime.date.today().isoformat()
    lines.append("")
    lines.append(f"Measured {day} on {machine()}, device {device}: the whole demo took {wall / 60:.1f} min "
                 f"({cpu / 60:.1f} min of CPU time in the demo's process).")
    return "\n".join(lines)


def update_readme(table, path="README.md"):
    """Put ``table`` between the README's demo markers."""
    text = Path(path).read_text(encoding="utf-8")
    new, n = re.subn(r"(<!-- demo-table:start -->\n).*?(<!-- demo-table:end -->)",
                     lambda m: m.group(1) + table + "\n" + m.group(2), text, flags=re.S)
    if n != 1:
        raise SystemExit(f"{path}: no <!-- demo-table:start --> ... <!-- demo-table:end --> block to fill")
    Path(path).write_text(new, encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m examples", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the examples")
    dl = sub.add_parser("download", help="fetch data sets into the cache ($MINIGRAD_DATA, default ~/.cache/minigrad)")
    dl.add_argument("names", nargs="*", metavar="NAME",
                    help=f"data sets to fetch (default: all): {', '.join(DATASETS)}")
    dl.add_argument("--force", action="store_true", help="fetch again even when cached")
    for name in ("run", "demo"):
        p = sub.add_parser(name, help="run one example" if name == "run" else
                           f"train {DEMO} in full, then a quick tour of every other example")
        if name == "run":
            p.add_argument("name")
            p.add_argument("--distributed", action="store_true",
                           help="data-parallel over the ranks of `mpiexec -n N` (cnn_digits, capsule_two_digits)")
        p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
        p.add_argument("--quick", action="store_true", help="seconds-long smoke run")
        p.add_argument("--out", default="runs")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1,
                       help="BLAS threads (default 1: these small models train as fast on one thread, and many "
                            "times faster when other programs share the CPU; 0 = the BLAS library's default)")
        if name == "demo":
            p.add_argument("--readme", action="store_true", help="write the summary table into README.md")
    argv = sys.argv[1:] if argv is None else list(argv)
    args, options = parser.parse_known_args(argv)
    args.argv = argv
    if options and args.cmd != "run":
        parser.error(f"unrecognized arguments: {' '.join(options)}")
    unknown = [n for n in getattr(args, "names", []) if n not in DATASETS]
    if unknown:
        dl.error(f"unknown data set {unknown[0]!r} (choose from {', '.join(DATASETS)})")
    examples = discover()
    if args.cmd == "list":
        width = max(map(len, examples), default=0)
        for name, module in examples.items():
            print(f"{name:<{width}}  {module.DESCRIPTION}")
        return 0
    if args.cmd == "download" or args.cmd == "demo":
        try:
            folders = download(args.names or None if args.cmd == "download" else None,
                               force=args.cmd == "download" and args.force)
        except DownloadError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        if args.cmd == "download":
            for name, folder in folders.items():
                print(f"{name:<{max(map(len, folders))}}  {folder}")
            return 0
    if args.cmd == "run":
        if args.name not in examples:
            print(f"unknown example {args.name!r}; choose from: {', '.join(examples)}", file=sys.stderr)
            return 2
        metrics = run_one(examples[args.name], args, args.quick, options)
        print(json.dumps(metrics, indent=2, default=float))
        return 0
    rows, start, cpu = [], time.perf_counter(), time.process_time()
    order = [DEMO] + [n for n in examples if n != DEMO] if DEMO in examples else list(examples)
    for name in order:
        quick = args.quick or name != DEMO
        print(f"\n=== {name} ({'quick' if quick else 'full'}) ===", flush=True)
        try:
            m = run_one(examples[name], args, quick)
            rows.append((name, "smoke run" if m.get("smoke_run") else "quick" if quick else "full", m))
        except Exception as e:  # one broken example must not hide the others' results
            rows.append((name, "FAILED", f"{type(e).__name__}: {e}"))
    table = demo_table(rows, time.perf_counter() - start, time.process_time() - cpu, args.device)
    print("\n" + table)
    Path(args.out, "demo.md").write_text(table + "\n", encoding="utf-8")
    if args.readme:
        update_readme(table)
    return 1 if any(r[1] == "FAILED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
