"""One Transformer encoder layer (B=32, T=128, d=256, h=8, feed-forward 1024, post-norm, ReLU), forward + backward:
minigrad with the fused attention Function (saving P, or only its log-sum-exp), minigrad with the attention
composed from primitives, and PyTorch's ``nn.TransformerEncoderLayer``; then the attention core alone.

``python -m benchmarks.bench_attention [--repeat 10] [--threads 1] [--quick] [--device cuda]`` prints Markdown
tables and writes them into docs/benchmarks/attention.md (``docs/benchmarks/attention-cuda.md`` on a GPU),
between the ``bench:start``/``bench:end`` markers, followed by their reading: the targets judged from these
tables, the Amdahl bound of the layer and the memory the variants save, all computed from the tables
(``--reading`` recomputes only that reading from the tables already on the page, without measuring).

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


# ---- the reading: targets and bounds computed from the tables ----------------------------------------------------
READING = "### Reading of this run"
LAYER0, LAYER1, CORE = "Encoder layer, dropout 0.0", "Encoder layer, dropout 0.1", "Attention core only"
COLUMNS = ("ms", "min", "wall", "vs_composed", "vs_torch", "peak", "saved")


def parse_tables(body):
    """{section title: {variant: {column: float}}} from the Markdown that ``table`` writes under each
    "### title" heading of ``body`` (a title is cut before its first colon or parenthesis)."""
    sections, title = {}, None
    for line in body.splitlines():
        if line.startswith("### "):
            title = line[4:].split(":")[0].split(" (")[0].strip()
        elif title and line.startswith("| ") and not line.startswith("| variant"):
            name, *cells = [c.strip() for c in line.strip("|").split("|")]
            sections.setdefault(title, {})[name] = {c: float(v) if v != "n/a" else None
                                                    for c, v in zip(COLUMNS, cells)}
    return sections


def flops():
    """(linear maps, attention products) GFLOP of one forward+backward step of the layer: each product costs
    2mnk in forward and twice that in backward."""
    rows = B * T
    linear = 2 * rows * (D * 3 * D + D * D + D * FF + FF * D)
    attention = 2 * 2 * B * H * T * T * (D // H)
    return 3 * linear / 1e9, 3 * attention / 1e9


def reading(body, speedup=1.3, torch_ratio=1.5):
    """The Markdown reading of the tables in ``body``: the targets (fused ≥ ``speedup``× faster than composed,
    fused peak below composed, fused ≤ ``torch_ratio``× PyTorch), the Amdahl bound that the composed layer's time
    and the composed core's time put on any attention speed-up, and what saving less costs and saves."""
    t = parse_tables(body)
    if not all(k in t for k in (LAYER0, LAYER1, CORE)):
        return ""
    l0, l1, core = t[LAYER0], t[LAYER1], t[CORE]
    fused, rec, comp, torch = "minigrad fused", "minigrad recompute", "minigrad composed", "PyTorch"

    def judge(ok):
        return "met" if ok else "**missed**"

    def speed(sec):
        return sec[comp]["ms"] / sec[fused]["ms"]

    def lower(sec):
        a, b = sec[fused]["peak"], sec[comp]["peak"]
        return f"{'met' if a < b else '**equal**' if a == b else '**missed**'} ({a:.1f} vs {b:.1f} MiB)"
    rows = [f"| fused ≥ {speedup}× faster than composed | attention core: {judge(speed(core) >= speedup)} "
            f"({speed(core):.2f}×, {core[fused]['ms']:.1f} vs {core[comp]['ms']:.1f} ms). Whole layer: "
            f"{judge(min(speed(l0), speed(l1)) >= speedup)} ({speed(l0):.2f}× at dropout 0.0, {speed(l1):.2f}× at "
            "dropout 0.1). |",
            f"| fused peak memory lower than composed | core: {lower(core)}. Layer, dropout 0.1: {lower(l1)}. Layer, "
            f"dropout 0.0: {lower(l0)}; `recompute`: {l0[rec]['peak']:.1f} MiB. |"]
    if torch in l0 and torch in l1 and torch in core:
        r0, r1, rc = (sec[fused]["ms"] / sec[torch]["ms"] for sec in (l0, l1, core))
        rows.append(f"| fused ≤ {torch_ratio}× PyTorch | {judge(max(r0, r1) <= torch_ratio)}: {r0:.2f}× PyTorch's "
                    f"time at dropout 0.0, {r1:.2f}× at dropout 0.1; the core alone {rc:.2f}× "
                    "`F.scaled_dot_product_attention`. |")
    linear, attention = flops()
    layer, att = l0[comp]["ms"], core[comp]["ms"]
    rest = layer - att
    array = B * H * T * T * 4 / 2 ** 20
    text = [READING, "", "| target | result |", "|---|---|", *rows, "",
            f"**Amdahl bound.** The four linear maps of the layer (Q/K/V, output, two feed-forward) cost "
            f"{linear:.1f} GFLOP per step against {attention:.1f} GFLOP for the two attention products. The "
            f"composed layer at dropout 0.0 takes {layer:.1f} ms, of which its attention core (the same shapes, "
            f"timed alone above) takes {att:.1f} ms. An attention that cost nothing would leave {rest:.1f} ms, so "
            f"no attention, however fast, speeds this layer up by more than {layer:.1f} / {rest:.1f} = "
            f"{layer / rest:.2f}×. The fused op saves {att - core[fused]['ms']:.1f} ms of the core "
            f"({speed(core):.2f}×) and {layer - l0[fused]['ms']:.1f} ms of the layer.",
            "",
            f"**Memory.** One (B, h, T, T) float32 array is {array:.1f} MiB here; the dropout mask packed as bits "
            f"is {array / 32:.1f} MiB. Saving the log-sum-exp instead of the softmax (`recompute`) holds "
            f"{l0[fused]['saved'] - l0[rec]['saved']:.1f} MiB less after the layer's forward, for "
            f"{core[rec]['ms'] - core[fused]['ms']:.1f} ms more in the core."]
    if torch in l0:
        text[-1] += (f" After forward, the fused layer holds {l0[fused]['saved']:.1f} MiB, PyTorch's "
                     f"{l0[torch]['saved']:.1f} MiB.")
    return "\n".join(text) + "\n"


def write_body(out, body):
    text = out.read_text() if out.exists() else "# Attention benchmark\n\n<!-- bench:start --><!-- bench:end -->\n"
    start, end = text.index("<!-- bench:start -->"), text.index("<!-- bench:end -->") + len("<!-- bench:end -->")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text[:start] + body + text[end:])
    print(f"wrote {out}")


def reread(out):
    """Recompute the reading from the tables already on the page ``out`` (no measurement)."""
    text = out.read_text()
    start = text.index("<!-- bench:start -->") + len("<!-- bench:start -->")
    tables = text[start:text.index("<!-- bench:end -->")].split(READING)[0].rstrip("\n") + "\n"
    write_body(out, "<!-- bench:start -->" + tables + "\n" + reading(tables) + "<!-- bench:end -->")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="2 repeats, do not write the docs page")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (CuPy against PyTorch CUDA)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", default=None, help="also write the dropout-0 encoder-layer times (s) here")
    ap.add_argument("--reading", action="store_true",
                    help="only recompute the reading from the tables already on the page (no measurement)")
    args = ap.parse_args()
    global DEVICE
    DEVICE = mg.backend.parse_device(args.device)
    out = page("attention", DEVICE, args.out)
    if args.reading:
        reread(out)
        return
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
    tables = "\n" + stamp + "\n".join(sections)
    notes = reading(tables)
    print(notes, flush=True)
    if not args.quick:
        write_body(out, "<!-- bench:start -->" + tables + "\n" + notes + "<!-- bench:end -->")


if __name__ == "__main__":
    main()
