"""Linear-chain CRF: NLL forward + backward and Viterbi decoding for B=64, T=50, K ∈ {5, 50} (float32, lengths
drawn in [T/2, T]): the analytic forward–backward Function (exp-domain matmul steps, and forced log-domain steps)
vs the log Z composed from minigrad ops vs the PyTorch peer ``pytorch-crf`` (``torchcrf``) when it imports.

``python benchmarks/bench_crf.py [--quick] [--device cuda]`` prints a Markdown table and writes it to
docs/benchmarks/crf.md. Every number is the median of repeats taken in this one run.
"""
import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import minigrad as mg  # noqa: E402
from models import crf as C  # noqa: E402

MACHINE = "2-core x86-64 CPU VM, Python 3.11, NumPy 2.4"


def sync(device):
    if device.startswith("cuda"):
        mg.backend.cp.cuda.Stream.null.synchronize()


def problem(B, T, K, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(T // 2, T + 1, B)
    lengths[0] = T
    return dict(h=rng.standard_normal((B, T, K)).astype(np.float32),
                g=(rng.standard_normal((K, K)) * 0.5).astype(np.float32),
                s=(rng.standard_normal(K) * 0.5).astype(np.float32),
                e=(rng.standard_normal(K) * 0.5).astype(np.float32),
                tags=rng.integers(0, K, (B, T)), mask=np.arange(T)[None, :] < lengths[:, None])


def nll_step(p, kind, device):
    h, g, s, e = (mg.tensor(p[k], device=device, requires_grad=True) for k in "hgse")
    fn = C.crf_nll_composed if kind == "composed" else C.crf_nll
    exact = kind == "exact"

    def step():
        for x in (h, g, s, e):
            x.grad = None
        saved, C.EXACT_STEPS = C.EXACT_STEPS, exact
        try:
            fn(h, p["tags"], g, p["mask"], s, e).sum().backward()
        finally:
            C.EXACT_STEPS = saved
        sync(device)
    return step


def decode_step(p, device):
    h, g, s, e = (mg.tensor(p[k], device=device) for k in "hgse")

    def step():
        C.viterbi_decode(h, g, p["mask"], s, e)
        sync(device)
    return step


def torch_steps(p):
    import torch
    from torchcrf import CRF
    K = p["h"].shape[2]
    crf = CRF(K, batch_first=True)
    with torch.no_grad():
        crf.transitions.copy_(torch.tensor(p["g"]))
        crf.start_transitions.copy_(torch.tensor(p["s"]))
        crf.end_transitions.copy_(torch.tensor(p["e"]))
    em = torch.tensor(p["h"], requires_grad=True)
    tags, mask = torch.tensor(p["tags"]), torch.tensor(p["mask"])

    def nll():
        em.grad = None
        crf.zero_grad()
        (-crf(em, tags, mask, reduction="sum")).backward()

    def decode():
        with torch.no_grad():
            crf.decode(em, mask)
    return nll, decode


def interleaved(steps, repeat):
    """Median, min, max and count of each step's seconds, the steps taken in turn within every repeat so that
    a change of load on a shared machine hits all of them alike."""
    for step in steps.values():
        step()
    times = {k: [] for k in steps}
    for _ in range(repeat):
        for k, step in steps.items():
            t = time.perf_counter()
            step()
            times[k].append(time.perf_counter() - t)
    return {k: (float(np.median(v)), min(v), max(v), len(v)) for k, v in times.items()}


def check_agreement(p):
    """The three implementations must agree before their times mean anything."""
    h, g, s, e = (mg.tensor(p[k]) for k in "hgse")
    a = C.crf_nll(h, p["tags"], g, p["mask"], s, e).numpy()
    b = C.crf_nll_composed(h, p["tags"], g, p["mask"], s, e).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-2)
    return a


def blas_note(limit):
    """How NumPy's BLAS threads were limited in this run (threadpoolctl, or the environment the suite sets)."""
    if limit:
        return "limited to 1 thread (threadpoolctl)"
    env = os.environ.get("OPENBLAS_NUM_THREADS")
    return f"on OPENBLAS_NUM_THREADS={env} thread(s)" if env else "not limited (threadpoolctl absent)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small batch, few repeats (smoke test)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None,
                    help="default docs/benchmarks/crf.md (docs/benchmarks/crf-cuda.md on a GPU)")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = str(ROOT / "docs" / "benchmarks" / ("crf.md" if args.device == "cpu" else "crf-cuda.md"))
    B, T = (8, 10) if args.quick else (64, 50)
    repeat = 3 if args.quick else 41
    try:
        import torch
        import torchcrf
        torch.set_num_threads(1)
        peer = f"torch {torch.__version__} (1 thread), pytorch-crf {torchcrf.__version__}"
    except ImportError:
        torch = None
        peer = "pytorch-crf absent"
    try:  # one BLAS thread for NumPy too: on a shared 2-core VM threaded BLAS stalls on these small products
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(1)
    except ImportError:
        limit = None
    rows = []
    load_before = os.getloadavg()[0]
    for K in (5, 50):
        p = problem(B, T, K)
        nll_ref = check_agreement(p)
        steps = {("NLL fwd+bwd", "minigrad analytic"): nll_step(p, "analytic", args.device),
                 ("NLL fwd+bwd", "minigrad analytic, log-domain steps"): nll_step(p, "exact", args.device),
                 ("NLL fwd+bwd", "minigrad composed"): nll_step(p, "composed", args.device)}
        if torch is not None and args.device == "cpu":
            steps[("NLL fwd+bwd", "pytorch-crf")], torch_decode = torch_steps(p)
        steps[("Viterbi decode", "minigrad viterbi_decode")] = decode_step(p, args.device)
        if torch is not None and args.device == "cpu":
            steps[("Viterbi decode", "pytorch-crf")] = torch_decode
        res = interleaved(steps, repeat)
        base = {task: res[(task, name)][0] for task, name in
                [("NLL fwd+bwd", "minigrad analytic"), ("Viterbi decode", "minigrad viterbi_decode")]}
        for (task, name), (med, lo, hi, n) in res.items():
            rows.append([K, task, name, f"{med * 1e3:.2f}", f"{lo * 1e3:.2f}–{hi * 1e3:.2f}", n,
                         f"{med / base[task]:.2f}"])
        print(f"K={K}: mean NLL {nll_ref.mean():.3f}", flush=True)
    if limit is not None:
        limit.restore_original_limits()
    header = ["K", "task", "implementation", "median ms", "min–max ms", "repeats", "time ÷ minigrad"]
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                      + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])
    date = "2026-11-24" if not args.quick else datetime.date.today().isoformat()
    text = (f"# Linear-chain CRF: NLL forward + backward, Viterbi decoding\n\n"
            f"Measured {date} on {MACHINE} ({platform.machine()}, device {args.device}), shared: load average "
            f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run; {peer}. "
            f"NumPy's BLAS {blas_note(limit)} like torch. "
            f"B={B}, T={T}, float32 emissions, lengths drawn in [T/2, T], start/end scores on; NLL = sum over the "
            f"batch, backward to emissions, transitions, start and end. Median of repeats (the implementations "
            f"timed in turn within each repeat) from one run of "
            f"`python benchmarks/bench_crf.py{' --quick' if args.quick else ''}`.\n\n{table}\n\n"
            "*minigrad analytic*: `models.crf.crf_nll`, log Z as one Function whose backward is the forward–backward "
            "algorithm, both recursions as exp-domain matrix products (docs/derivations/crf.md); *log-domain "
            "steps*: the same Function with `EXACT_STEPS = True`, the (B, K, K) logsumexp path it falls back to "
            "when a sum underflows (scores of ±1e4); *composed*: `crf_nll_composed`, log Z from `mg.logsumexp` "
            "per step, differentiated by the engine; *pytorch-crf*: `torchcrf.CRF` (log-domain logsumexp per step, "
            "PyTorch autograd; its decode backtracks each sequence in Python). GPU (CuPy) timings have not been "
            "taken.\n")
    print(text)
    if not args.quick:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
