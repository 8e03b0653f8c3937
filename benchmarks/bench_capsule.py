"""Dynamic routing, forward + backward: the hand-written Function vs the same routing composed from minigrad ops
vs the composed routing in PyTorch (CPU), on û of shape (64, 1152, 10, 16) float32 (Sabour's 1152 primary
capsules of dim 8 routed to 10 capsules of dim 16), 3 iterations, for each routing variant. Also the whole
``Capsule`` layer (per-capsule matrices 8 → 10·16, then routing), hand-written routing only.

``python -m benchmarks.bench_capsule [--quick] [--device cuda]`` prints a Markdown table and writes it to
docs/benchmarks/capsule.md. Every number is the median of repeats taken in this one run.
"""
import argparse

import numpy as np


import minigrad as mg  # noqa: E402
from benchmarks.common import interleaved, machine, markdown_table, one_thread, page, sync, today, write_page  # noqa: E402
from minigrad.models.capsule import VARIANTS, Capsule, dynamic_routing, dynamic_routing_composed  # noqa: E402



def minigrad_step(fn, u, g, variant, device):
    x = mg.tensor(u, device=device, requires_grad=True)
    gy = mg.tensor(g, device=device)

    def step():
        x.grad = None
        fn(x, 3, variant).backward(gy)
        sync(device)
    return step


def torch_step(u, g, variant):
    import torch
    x = torch.tensor(u, requires_grad=True)
    gy = torch.tensor(g)

    def squash(s):
        q = (s * s).sum(-1, keepdim=True)
        return s * q / ((1.0 + q) * torch.sqrt(q + 1e-12))

    def route():
        b = torch.zeros(x.shape[:3])
        for t in range(3):
            c = torch.softmax(b, dim=2)
            s = (c.unsqueeze(-1) * x).sum(1)
            if t == 2:
                return squash(s)
            v = s / torch.sqrt((s * s).sum(-1, keepdim=True) + 1e-12) if variant == "kmeans" else squash(s)
            a = (x * v.unsqueeze(1)).sum(-1)
            b = b + a if variant == "sabour" else a

    def step():
        x.grad = None
        route().backward(gy)
    return step


def layer_step(B, device):
    mg.manual_seed(0)
    layer = Capsule(1152, 10, 8, 16, shared=False, routing="sabour", device=device)
    u = mg.tensor(np.random.default_rng(1).standard_normal((B, 1152, 8)).astype(np.float32) * 0.1, device=device)

    def step():
        layer.zero_grad()
        (layer(u) ** 2).sum().backward()
        sync(device)
    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="small batch, few repeats (smoke test)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None,
                    help="default docs/benchmarks/capsule.md (docs/benchmarks/capsule-cuda.md on a GPU)")
    args = p.parse_args(argv)
    B = 4 if args.quick else 64
    repeat = 3 if args.quick else 9
    rng = np.random.default_rng(0)
    u = (rng.standard_normal((B, 1152, 10, 16)) * 0.05).astype(np.float32)
    g = rng.standard_normal((B, 10, 16)).astype(np.float32)
    torch, threads = one_thread()
    rows = []
    for variant in VARIANTS:
        steps = {"hand-written": minigrad_step(dynamic_routing, u, g, variant, args.device),
                 "composed": minigrad_step(dynamic_routing_composed, u, g, variant, args.device)}
        if torch is not None and args.device == "cpu":
            steps["PyTorch composed"] = torch_step(u, g, variant)
        res = interleaved(steps, repeat)
        base = res["hand-written"][1]
        for name, (wall, cpu, lo, hi) in res.items():
            rows.append([variant, name, f"{cpu * 1e3:.1f}", f"{cpu / base:.2f}", f"{wall * 1e3:.1f}",
                         f"{lo * 1e3:.1f}–{hi * 1e3:.1f}"])
    wall, cpu, lo, hi = interleaved({"layer": layer_step(B, args.device)}, repeat)["layer"]
    rows.append(["sabour", "Capsule layer (1152·8 → 10·16 per-capsule W + routing)", f"{cpu * 1e3:.1f}", "",
                 f"{wall * 1e3:.1f}", f"{lo * 1e3:.1f}–{hi * 1e3:.1f}"])
    header = ["variant", "implementation", "CPU ms (median)", "CPU ÷ hand-written", "wall ms (median)",
              "wall min–max ms"]
    table = markdown_table(header, rows)
    text = (f"# Capsule dynamic routing: forward + backward\n\n"
            f"Measured {today()} on {machine(args.device)} (device {args.device}); {threads}. "
            f"û of shape ({B}, 1152, 10, 16) float32, 3 routing iterations, "
            f"gradient of a fixed random upstream gradient; medians of {repeat} repeats from one run of "
            f"`python -m benchmarks.bench_capsule{' --quick' if args.quick else ''}`.\n\n{table}\n\n"
            "*hand-written*: `minigrad.models.capsule.dynamic_routing`, one Function whose backward replays the "
            "iterations in reverse (docs/derivations/capsule.md); *composed*: `dynamic_routing_composed`, the "
            "same equations from minigrad ops, differentiated by the engine; *PyTorch composed*: the same equations "
            "in PyTorch autograd. When other jobs share the VM's 2 cores, wall time includes waiting for a core; "
            "process CPU time (every engine on one thread) does not, so where the two columns differ the CPU column "
            "is the measure of the work.\n")
    print(text)
    if not args.quick:
        write_page(page("capsule", args.device, args.out), text)


if __name__ == "__main__":
    main()
