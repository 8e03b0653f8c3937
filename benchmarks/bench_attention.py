"""One Transformer encoder layer (B=32, T=128, d=256, h=8, feed-forward 1024, post-norm, ReLU), forward + backward:
minigrad with the fused attention Function (saving P, or only its log-sum-exp), minigrad with the attention
composed from primitives, and PyTorch's ``nn.TransformerEncoderLayer``; then the attention core alone.

``python -m benchmarks.bench_attention [--repeat 10] [--threads 1] [--quick] [--device cuda]`` prints Markdown
tables and writes them into docs/benchmarks/attention.md (``docs/benchmarks/attention-cuda.md`` on a GPU),
between the ``bench:start``/``bench:end`` markers.

Method. Time: CPU time of the process (``time.process_time``) per forward+backward step, median (and min) of
``--repeat`` rounds that interleave the variants, after a warm-up, every library on ``--threads`` BLAS/OpenMP
threads. CPU time, not wall time, because the machine is shared: wall time mostly measures waiting for a core.
Memory: bytes the array library holds above the step's start, at the peak of forward+backward and after
forward (what is saved for backward, plus the output). NumPy reports its buffers to ``tracemalloc``; PyTorch's
CPU allocator does not, so for PyTorch we read the allocator's own running total ("Total Allocated") from the
memory events of ``torch.profiler`` (``profile_memory=True``). Parameter gradients are cleared before each step
in both, so both peaks include the freshly allocated weight gradients.

On ``--device cuda`` (CuPy against PyTorch CUDA) time is wall time with the device synchronised after each
step, and memory is what each library's caching allocator has handed out: CuPy's memory pool (peak through a
``cupy.cuda.MemoryHook``) and ``torch.cuda.memory_allocated`` / ``max_memory_allocated``.
"""
import argparse
import os
import sys

if __name__ == "__main__":  # thread counts must be fixed before NumPy/PyTorch load their thread pools
    _pre = argparse.ArgumentParser(add_help=False)
    _pre.add_argument("--threads", type=int, default=1)
    _n = str(_pre.parse_known_args()[0].threads)
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


import minigrad as mg  # noqa: E402
from benchmarks.common import machine, page, today  # noqa: E402
from minigrad.models.attention import TransformerEncoderLayer, attention_composed, scaled_dot_product_attention  # noqa: E402

B, T, D, H, FF = 32, 128, 256, 8, 1024


DEVICE = "cpu"


def sync():
    if DEVICE.startswith("cuda"):
        mg.backend.cp.cuda.Stream.null.synchronize()


def torch_device():
    return "cuda" if DEVICE.startswith("cuda") else "cpu"


# ---- one step per variant --------------------------------------------------------------------------------------
def minigrad_layer(kind, dropout, x, G, weights):
    layer = TransformerEncoderLayer(D, H, FF, dropout=dropout, batch_first=True, fused=kind != "composed")
    layer.self_attn.recompute = kind == "recompute"
    layer.load_state_dict(weights)
    layer.to(DEVICE)
    params = list(layer.parameters())

    def step():
        for p in params:
            p.grad = None
        x.grad = None
        y = layer(x)
        return y, lambda: y.backward(G)
    return step


def torch_layer(dropout, x, G, weights):
    import torch
    dev = torch_device()
    layer = torch.nn.TransformerEncoderLayer(D, H, FF, dropout=dropout, batch_first=True)
    layer.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    layer.to(dev)
    tx = torch.tensor(x.numpy(), requires_grad=True, device=dev)
    tG = torch.tensor(G.numpy(), device=dev)

    def step():
        layer.zero_grad(set_to_none=True)
        tx.grad = None
        y = layer(tx)
        return y, lambda: y.backward(tG)
    return step


def minigrad_core(kind, q, k, v, g):
    fn = attention_composed if kind == "composed" else scaled_dot_product_attention
    kw = {"recompute": True} if kind == "recompute" else {}

    def step():
        q.grad = k.grad = v.grad = None
        y = fn(q, k, v, **kw)
        return y, lambda: y.backward(g)
    return step


def torch_core(q, k, v, g):
    import torch
    dev = torch_device()
    tq, tk, tv = (torch.tensor(a.numpy(), requires_grad=True, device=dev) for a in (q, k, v))
    tg = torch.tensor(g.numpy(), device=dev)

    def step():
        tq.grad = tk.grad = tv.grad = None
        y = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv)
        return y, lambda: y.backward(tg)
    return step


# ---- measurement -----------------------------------------------------------------------------------------------
def run_once(step):
    y, backward = step()
    backward()
    sync()
    if DEVICE.startswith("cuda") and "torch" in sys.modules:
        sys.modules["torch"].cuda.synchronize()


def times(steps, repeat):
    """CPU and wall seconds per step for each variant; rounds interleave the variants. On a GPU the first
    column is wall time too (CPU time would only count the kernel launches)."""
    for s in steps.values():
        run_once(s)
    cpu, wall = {n: [] for n in steps}, {n: [] for n in steps}
    for _ in range(repeat):
        for n, s in steps.items():
            c, w = time.process_time(), time.perf_counter()
            run_once(s)
            cpu[n].append(time.process_time() - c)
            wall[n].append(time.perf_counter() - w)
    if DEVICE.startswith("cuda"):
        cpu = wall
    return {n: (float(np.median(cpu[n])), float(np.min(cpu[n])), float(np.median(wall[n]))) for n in steps}


def numpy_memory(step):
    """(peak, after-forward) bytes above the start, from tracemalloc (CuPy's memory pool on a GPU)."""
    run_once(step)
    if DEVICE.startswith("cuda"):
        return cupy_memory(step)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    y, backward = step()
    saved = tracemalloc.get_traced_memory()[0] - base
    backward()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak, saved


def cupy_memory(step):
    """(peak, after-forward) bytes of CuPy's memory pool above the start of the step."""
    cp = mg.backend.cp
    pool = cp.get_default_memory_pool()

    class Peak(cp.cuda.MemoryHook):
        name = "minigrad-bench-peak"
        peak = 0

        def malloc_postprocess(self, **kwargs):
            self.peak = max(self.peak, pool.used_bytes())

    sync()
    base = pool.used_bytes()
    hook = Peak()
    with hook:
        y, backward = step()
        sync()
        saved = pool.used_bytes() - base
        backward()
        sync()
    return max(hook.peak - base, saved), saved


def torch_memory(step):
    """(peak, after-forward) bytes from the CPU allocator's running total in torch.profiler memory events
    (``torch.cuda`` memory statistics on a GPU)."""
    run_once(step)
    if DEVICE.startswith("cuda"):
        import torch
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        y, backward = step()
        torch.cuda.synchronize()
        saved = torch.cuda.memory_allocated() - base
        backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base, saved
    from torch.profiler import ProfilerActivity, profile

    def allocated(fn):
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = fn()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "trace.json")
            prof.export_chrome_trace(path)
            events = json.load(open(path))["traceEvents"]
        totals = [e["args"]["Total Allocated"] for e in sorted(events, key=lambda e: e.get("ts", 0))
                  if e.get("name") == "[memory]"]
        return out, totals

    (y, backward), fwd = allocated(step)
    saved = fwd[-1] if fwd else 0
    _, bwd = allocated(backward)  # the running total restarts at 0 for the second profile
    peak = max([saved] + fwd + [saved + t for t in bwd])
    return peak, saved


def mib(n):
    return f"{n / 2 ** 20:.1f}"


def table(rows, ref):
    clock = "wall ms / step (median)" if DEVICE.startswith("cuda") else "CPU ms / step (median)"
    head = (f"| variant | {clock} | min | wall ms (median) | × vs composed | × vs PyTorch "
            "| peak MiB | saved after forward MiB |\n|---|---|---|---|---|---|---|---|\n")
    lines = []
    for name, (t, mem) in rows.items():
        vs_c = rows["minigrad composed"][0][0] / t[0]
        vs_t = f"{t[0] / rows[ref][0][0]:.2f}" if ref in rows else "n/a"
        lines.append(f"| {name} | {t[0] * 1e3:.1f} | {t[1] * 1e3:.1f} | {t[2] * 1e3:.1f} | {vs_c:.2f} | {vs_t} | "
                     f"{mib(mem[0])} | {mib(mem[1])} |")
    return head + "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="2 repeats, do not write the docs page")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (CuPy against PyTorch CUDA)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", default=None, help="also write the dropout-0 encoder-layer times (s) here")
    args = ap.parse_args()
    global DEVICE
    DEVICE = mg.backend.parse_device(args.device)
    out = page("attention", DEVICE, args.out)
    repeat = 2 if args.quick else args.repeat
    try:
        import torch
        torch.set_num_threads(args.threads)
        torch_version = torch.__version__
    except ImportError:
        torch = None
        torch_version = "absent"

    mg.manual_seed(0)
    x = mg.randn(B, T, D, requires_grad=True, device=DEVICE)
    G = mg.randn(B, T, D, device=DEVICE)
    weights = {k: v.numpy().copy() for k, v in
               TransformerEncoderLayer(D, H, FF, batch_first=True).state_dict().items()}
    sections = []
    for dropout in (0.0, 0.1):
        steps = {f"minigrad {k}": minigrad_layer(k, dropout, x, G, weights)
                 for k in ("fused", "recompute", "composed")}
        if torch is not None:
            steps["PyTorch"] = torch_layer(dropout, x, G, weights)
        t = times(steps, repeat)
        mem = {n: (torch_memory if n == "PyTorch" else numpy_memory)(s) for n, s in steps.items()}
        check = ""
        if torch is not None and dropout == 0.0:
            diff = np.abs(steps["minigrad fused"]()[0].numpy() - steps["PyTorch"]()[0].detach().cpu().numpy()).max()
            check = f" Same weights; max |minigrad − PyTorch| on the output: {diff:.1e}."
        if dropout == 0.0 and args.json:
            Path(args.json).write_text(json.dumps({n: t[n][0] for n in steps}))
        sections.append(f"### Encoder layer, dropout {dropout} (training mode)\n\n{check.strip()}\n\n"
                        + table({n: (t[n], mem[n]) for n in steps}, "PyTorch"))
        print(sections[-1], flush=True)

    hd = D // H
    q, k, v = (mg.randn(B, H, T, hd, requires_grad=True, device=DEVICE) for _ in range(3))
    g = mg.randn(B, H, T, hd, device=DEVICE)
    steps = {f"minigrad {kind}": minigrad_core(kind, q, k, v, g) for kind in ("fused", "recompute", "composed")}
    if torch is not None:
        steps["PyTorch"] = torch_core(q, k, v, g)
    t = times(steps, repeat)
    mem = {n: (torch_memory if n == "PyTorch" else numpy_memory)(s) for n, s in steps.items()}
    sections.append(f"### Attention core only: q, k, v of shape ({B}, {H}, {T}, {hd}), no mask, no dropout\n\n"
                    f"PyTorch: `F.scaled_dot_product_attention` (its fused {DEVICE.split(':')[0].upper()} "
                    "kernel).\n\n"
                    + table({n: (t[n], mem[n]) for n in steps}, "PyTorch"))
    print(sections[-1], flush=True)

    stamp = (f"Measured {today()} on {machine(DEVICE)}; PyTorch {torch_version}; "
             f"{args.threads} thread(s) for every library; {repeat} interleaved rounds; float32.\n\n")
    body = "<!-- bench:start -->\n" + stamp + "\n".join(sections) + "<!-- bench:end -->"
    if not args.quick:
        text = out.read_text() if out.exists() else "# Attention benchmark\n\n<!-- bench:start --><!-- bench:end -->\n"
        start, end = text.index("<!-- bench:start -->"), text.index("<!-- bench:end -->") + len("<!-- bench:end -->")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text[:start] + body + text[end:])
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
