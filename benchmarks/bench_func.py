"""Forward mode and the function transforms: a jvp of the MLP and CNN losses in one direction (every parameter
moves) vs one forward pass and vs a reverse pass (the gradient of every parameter); a Hessian-vector product by
forward over reverse (``minigrad.func.hvp``) vs two backward passes (double backprop); the full Hessian of a small
MLP by ``minigrad.func.hessian`` vs ``torch.func.hessian``, side by side in one run.

``python -m benchmarks.bench_func [--quick]`` prints the tables and writes docs/benchmarks/func.md (and the same
section of docs/benchmarks.md). Target: a jvp costs at most 3× its forward pass.
"""
import argparse
import os

import numpy as np

import minigrad as mg
import minigrad.functional as F
from minigrad.func import hessian, hvp, jvp
from benchmarks.common import ROOT, interleaved, machine, markdown_table, one_thread, page, today, write_page


def mlp(dtype="float32", batch=128):
    """The suite's MLP 784-256-256-10 (ReLU, mean cross-entropy) as a function of its parameters."""
    rng = np.random.default_rng(0)
    X, y = mg.tensor(rng.random((batch, 784)).astype(dtype)), rng.integers(0, 10, batch)
    params = []
    for fan_in, fan_out in [(784, 256), (256, 256), (256, 10)]:
        b = 1 / np.sqrt(fan_in)
        params += [mg.tensor(rng.uniform(-b, b, (fan_out, fan_in)).astype(dtype)),
                   mg.tensor(rng.uniform(-b, b, fan_out).astype(dtype))]

    def loss(w1, b1, w2, b2, w3, b3):
        h = F.relu(F.linear(X, w1, b1))
        h = F.relu(F.linear(h, w2, b2))
        return F.cross_entropy(F.linear(h, w3, b3), y)
    return loss, params


def cnn(dtype="float32", batch=64):
    """The suite's CNN (conv16-pool-conv32-pool-linear on 28×28) as a function of its parameters."""
    rng = np.random.default_rng(0)
    X, y = mg.tensor(rng.random((batch, 1, 28, 28)).astype(dtype)), rng.integers(0, 10, batch)
    shapes = [(16, 1, 3, 3), (16,), (32, 16, 3, 3), (32,), (10, 32 * 7 * 7), (10,)]
    params = [mg.tensor((rng.standard_normal(s) * 0.1).astype(dtype)) for s in shapes]

    def loss(c1, d1, c2, d2, w, b):
        h = F.max_pool2d(F.relu(F.conv2d(X, c1, d1, padding=1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, c2, d2, padding=1)), 2)
        return F.cross_entropy(F.linear(h.reshape(h.shape[0], -1), w, b), y)
    return loss, params


def steps(loss, params):
    """forward, reverse (forward + backward to every parameter), jvp, hvp and double backprop on one workload."""
    rng = np.random.default_rng(1)
    tangents = tuple(mg.tensor(rng.standard_normal(p.shape).astype(p.dtype)) for p in params)
    tracked = [mg.Tensor(p.data, requires_grad=True) for p in params]

    def forward():
        with mg.no_grad():
            loss(*params)

    def reverse():
        mg.grad(loss(*tracked), tracked)

    def forward_mode():
        jvp(loss, tuple(params), tangents)

    def hvp_fwd_rev():
        hvp(loss, tuple(params), tangents)

    def double_backprop():
        gs = mg.grad(loss(*tracked), tracked, create_graph=True)
        dot = sum((g * t).sum() for g, t in zip(gs, tangents))
        mg.grad(dot, tracked)
    return {"forward": forward, "reverse": reverse, "jvp": forward_mode, "hvp": hvp_fwd_rev,
            "double backprop": double_backprop}


def check(loss, params):
    """The jvp equals ⟨gradient, direction⟩ and the two Hessian-vector products agree (float64)."""
    p64 = [mg.tensor(p.numpy().astype("float64")) for p in params]
    rng = np.random.default_rng(2)
    v = tuple(mg.tensor(rng.standard_normal(p.shape)) for p in p64)
    t = [mg.Tensor(p.data, requires_grad=True) for p in p64]
    gs = mg.grad(loss(*t), t, create_graph=True)
    d = jvp(loss, tuple(p64), v)[1].item()
    ref = sum(float((g.numpy() * w.numpy()).sum()) for g, w in zip(gs, v))
    hv = hvp(loss, tuple(p64), v)[1]
    hv2 = mg.grad(sum((g * w).sum() for g, w in zip(gs, v)), t)
    err = max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(hv, hv2))
    return abs(d - ref) / max(abs(ref), 1e-30), err


def small_mlp_hessian(torch, repeat):
    """Hessian of a 4-12-12-1 tanh MLP's squared error w.r.t. its flat parameter vector (229), float64."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((16, 4)), rng.standard_normal((16, 1))
    sizes = [(12, 4), (12,), (12, 12), (12,), (1, 12), (1,)]
    n = sum(int(np.prod(s)) for s in sizes)
    theta = rng.standard_normal(n) * 0.3

    def unflat(th, reshape):
        out, k = [], 0
        for s in sizes:
            m = int(np.prod(s))
            out.append(reshape(th[k:k + m], s))
            k += m
        return out

    def mg_loss(th):
        w1, b1, w2, b2, w3, b3 = unflat(th, lambda a, s: mg.reshape(a, s))
        h = mg.tanh(F.linear(mg.tensor(X), w1, b1))
        h = mg.tanh(F.linear(h, w2, b2))
        d = F.linear(h, w3, b3) - mg.tensor(y)
        return (d * d).mean()
    runs = {"minigrad.func.hessian (jacfwd of jacrev, one pass per parameter)":
            lambda: hessian(mg_loss)(mg.tensor(theta))}
    H = hessian(mg_loss)(mg.tensor(theta)).numpy()
    diff = None
    if torch is not None:
        import torch.func as tf
        tX, ty = torch.tensor(X), torch.tensor(y)

        def t_loss(th):
            w1, b1, w2, b2, w3, b3 = unflat(th, lambda a, s: a.reshape(s))
            h = torch.tanh(tX @ w1.T + b1)
            h = torch.tanh(h @ w2.T + b2)
            d = h @ w3.T + b3 - ty
            return (d * d).mean()
        runs["torch.func.hessian (jacfwd of jacrev, vmapped)"] = lambda: tf.hessian(t_loss)(torch.tensor(theta))
        diff = float(np.abs(H - tf.hessian(t_loss)(torch.tensor(theta)).numpy()).max())
    return n, interleaved(runs, repeat), diff


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch, threads = one_thread()
    repeat = 3 if args.quick else 15
    load0 = os.getloadavg()[0]
    sections, verdicts = [], []
    for name, make in (("MLP 784-256-256-10, batch 128", mlp), ("CNN conv16-pool-conv32-pool-linear, batch 64", cnn)):
        loss, params = make()
        rel, hv_err = check(*make("float64"))
        t = interleaved(steps(loss, params), repeat)
        fwd, rev = t["forward"], t["reverse"]
        rows = []
        for k, (wall, cpu, lo, hi) in t.items():
            rows.append([k, f"{wall * 1e3:.2f} ({lo * 1e3:.2f}–{hi * 1e3:.2f})", f"{cpu * 1e3:.2f}",
                         f"{wall / fwd[0]:.2f}× / {cpu / fwd[1]:.2f}×", f"{wall / rev[0]:.2f}× / {cpu / rev[1]:.2f}×"])
        ratio = t["jvp"][1] / fwd[1]
        verdicts.append(f"{name}: jvp / forward = {ratio:.2f}× (CPU time; "
                        f"{t['jvp'][0] / fwd[0]:.2f}× wall) — {'met' if ratio <= 3 else '**missed**'}")
        sections.append(f"### {name}, float32\n\n" + markdown_table(
            ["step", "wall ms (min–max)", "CPU ms", "÷ forward (wall / CPU)", "÷ reverse (wall / CPU)"], rows)
            + f"\n\nChecks in float64 before timing: jvp vs ⟨gradient, direction⟩ relative error {rel:.1e}; "
              f"hvp vs double backprop max abs difference {hv_err:.1e}.\n")
    n, th, diff = small_mlp_hessian(torch, 3 if args.quick else 7)
    rows = [[k, f"{w * 1e3:.1f} ({lo * 1e3:.1f}–{hi * 1e3:.1f})", f"{c * 1e3:.1f}"] for k, (w, c, lo, hi) in th.items()]
    agree = (f"The two Hessians agree to {diff:.1e} (max abs difference)." if diff is not None
             else "torch is absent: only minigrad measured.")
    sections.append(f"### Hessian of a small MLP (4-12-12-1, tanh, {n} parameters, float64)\n\n"
                    + markdown_table(["implementation", "wall ms (min–max)", "CPU ms"], rows) + f"\n\n{agree}\n")
    load1 = os.getloadavg()[0]
    text = "\n".join([
        "# Forward mode: jvp, hvp and Hessians", "",
        f"Measured {today()} on {machine()}; {threads}. Load average {load0:.1f} before and {load1:.1f} after the "
        "run: the machine was shared with other jobs, so wall times include waiting for a core and the CPU-time "
        f"columns (every engine on one thread) are the measure of the work. Medians of {repeat} rounds, the "
        "steps timed in turn within each round, from one run of `python -m benchmarks.bench_func`.", "",
        "*forward*: the loss under `no_grad`; *reverse*: the loss with its graph, then `mg.grad` of every "
        "parameter; *jvp*: `minigrad.func.jvp` of the loss along one random direction in parameter space (every "
        "parameter has a tangent); *hvp*: `minigrad.func.hvp`, forward over reverse (one forward pass carrying the "
        "tangent through the forward and the backward); *double backprop*: gradient with `create_graph=True`, "
        "then the gradient of ⟨gradient, v⟩ (two backward passes).", "",
        "**Target: a jvp costs ≤ 3× its forward pass.** " + "; ".join(verdicts) + ".", "",
        *sections,
        "*Reading the tables.* A jvp runs the forward pass once more for the tangents: a linear layer's tangent "
        "takes two products (tx·Wᵀ + x·tWᵀ) where the value takes one, the first layer only one (the data has "
        "no tangent), so the tangent pass costs somewhat under twice the value pass. A reverse pass costs about "
        "the same, which is why one jvp and one gradient are close. hvp (forward over reverse) and double "
        "backprop (reverse over reverse) do the same work in a different order and cost the same. The full "
        "Hessian takes one forward-over-reverse pass per parameter in minigrad; torch.func batches all of them "
        "into one vmapped pass, hence the gap."])
    out = page("func", "cpu", args.out)
    write_page(out, text)
    if args.out is None:  # the same section in docs/benchmarks.md (python -m benchmarks regenerates it too)
        bench = ROOT / "docs" / "benchmarks.md"
        src = bench.read_text()
        start, end = "<!-- func:start -->", "<!-- func:end -->"
        body = text.replace("\n# ", "\n### ").replace("# Forward mode", "## Forward mode", 1)
        if start in src:
            i, j = src.index(start) + len(start), src.index(end)
            src = src[:i] + "\n" + body + "\n" + src[j:]
        else:
            src = src.rstrip("\n") + f"\n\n{start}\n{body}\n{end}\n"
        bench.write_text(src)
        print(f"wrote the forward-mode section of {bench}")
    print(text)


if __name__ == "__main__":
    main()
