"""Linear-chain CRF: NLL forward + backward and Viterbi decoding for B=64, T=50, K ∈ {5, 50} (float32, lengths
drawn in [T/2, T]): the analytic forward–backward Function (exp-domain matmul steps, and forced log-domain steps)
vs the log Z composed from minigrad ops vs the PyTorch peer ``pytorch-crf`` (``torchcrf``) when it imports.

``python -m benchmarks.bench_crf [--quick] [--device cuda]`` prints a Markdown table and writes it to
docs/benchmarks/crf.md. Every number is the median of repeats taken in this one run.
"""
import argparse
import os

import numpy as np


import minigrad as mg  # noqa: E402
from benchmarks.common import interleaved, machine, markdown_table, one_thread, page, sync, today, write_page  # noqa: E402
from minigrad.models import crf as C  # noqa: E402




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


def check_agreement(p):
    """The three implementations must agree before their times mean anything."""
    h, g, s, e = (mg.tensor(p[k]) for k in "hgse")
    a = C.crf_nll(h, p["tags"], g, p["mask"], s, e).numpy()
    b = C.crf_nll_composed(h, p["tags"], g, p["mask"], s, e).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-2)
    return a


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small batch, few repeats (smoke test)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None,
                    help="default docs/benchmarks/crf.md (docs/benchmarks/crf-cuda.md on a GPU)")
    args = ap.parse_args(argv)
    B, T = (8, 10) if args.quick else (64, 50)
    repeat = 3 if args.quick else 41
    torch, threads = one_thread()
    try:
        import torchcrf
        peer = f"pytorch-crf {torchcrf.__version__}"
    except ImportError:
        torch, peer = None, "pytorch-crf absent"
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
        for (task, name), (med, _, lo, hi) in res.items():
            rows.append([K, task, name, f"{med * 1e3:.2f}", f"{lo * 1e3:.2f}–{hi * 1e3:.2f}", repeat,
                         f"{med / base[task]:.2f}"])
        print(f"K={K}: mean NLL {nll_ref.mean():.3f}", flush=True)
    header = ["K", "task", "implementation", "median ms", "min–max ms", "repeats", "time ÷ minigrad"]
    table = markdown_table(header, rows)
    text = (f"# Linear-chain CRF: NLL forward + backward, Viterbi decoding\n\n"
            f"Measured {today()} on {machine(args.device)} (device {args.device}), load average "
            f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run; {threads}; {peer}. "
            f"B={B}, T={T}, float32 emissions, lengths drawn in [T/2, T], start/end scores on; NLL = sum over the "
            f"batch, backward to emissions, transitions, start and end. Median of repeats (the implementations "
            f"timed in turn within each repeat) from one run of "
            f"`python -m benchmarks.bench_crf{' --quick' if args.quick else ''}`.\n\n{table}\n\n"
            "*minigrad analytic*: `minigrad.models.crf.crf_nll`, log Z as one Function whose backward is the "
            "forward–backward algorithm, both recursions as exp-domain matrix products (docs/derivations/crf.md); "
            "*log-domain steps*: the same Function with `EXACT_STEPS = True`, the (B, K, K) logsumexp path it falls "
            "back to when a sum underflows (scores of ±1e4); *composed*: `crf_nll_composed`, log Z from `mg.logsumexp` "
            "per step, differentiated by the engine; *pytorch-crf*: `torchcrf.CRF` (log-domain logsumexp per step, "
            "PyTorch autograd; its decode backtracks each sequence in Python).\n")
    print(text)
    if not args.quick:
        write_page(page("crf", args.device, args.out), text)


if __name__ == "__main__":
    main()
