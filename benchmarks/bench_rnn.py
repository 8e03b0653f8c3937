"""GRU and LSTM layers, forward + backward, B=32, T=50, input 64, hidden 128, float32: minigrad with the fused
step Functions (``GRUStep``, ``LSTMStep``; the default) vs minigrad with the steps composed from primitive ops
(``fused=False``) vs ``torch.nn.GRU`` / ``torch.nn.LSTM`` holding the same weights (CPU, when torch imports).

``python -m benchmarks.bench_rnn [--quick] [--device cuda]`` prints a Markdown table and writes it to
docs/benchmarks/rnn.md (docs/benchmarks/rnn-cuda.md on a GPU). Every number is the median of repeats taken in
this one run, the implementations timed in turn within each repeat.
"""
import argparse
import os

import numpy as np


import minigrad as mg  # noqa: E402
from benchmarks.common import interleaved, machine, markdown_table, one_thread, page, sync, today, write_page  # noqa: E402
from minigrad import nn  # noqa: E402

MODES = ("GRU", "LSTM")



def minigrad_step(mode, fused, x, gy, device):
    """One forward + backward of a freshly seeded layer (the same weights for every implementation)."""
    mg.manual_seed(0)
    layer = getattr(nn, mode)(x.shape[2], gy.shape[2], fused=fused).to(device)
    xt = mg.tensor(x, device=device, requires_grad=True)
    g = mg.tensor(gy, device=device)

    def step():
        layer.zero_grad()
        xt.grad = None
        layer(xt)[0].backward(g)
        sync(device)
    return step, layer, xt


def torch_step(torch, mode, layer, x, gy):
    t = getattr(torch.nn, mode)(layer.input_size, layer.hidden_size)
    t.load_state_dict({k: torch.tensor(v.numpy()) for k, v in layer.state_dict().items()})
    xt, g = torch.tensor(x, requires_grad=True), torch.tensor(gy)

    def step():
        t.zero_grad()
        xt.grad = None
        t(xt)[0].backward(g)
    return step, t, xt


def check_same(mode, ours, theirs):
    """The layers compute the same function and gradients before anything is timed."""
    (step, layer, x), (tstep, t, tx) = ours, theirs
    step()
    tstep()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-3, atol=1e-4, err_msg=mode)
    tparams = dict(t.named_parameters())
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), rtol=1e-3, atol=1e-3,
                                   err_msg=f"{mode} {name}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="short sequences, few repeats (smoke test)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None,
                   help="default docs/benchmarks/rnn.md (docs/benchmarks/rnn-cuda.md on a GPU)")
    args = p.parse_args(argv)
    B, T, I, H = (4, 5, 64, 128) if args.quick else (32, 50, 64, 128)
    repeat = 3 if args.quick else 15
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    gy = rng.standard_normal((T, B, H)).astype(np.float32)
    torch, threads = one_thread()
    load_before = os.getloadavg()[0]
    rows = []
    for mode in MODES:
        fused = minigrad_step(mode, True, x, gy, args.device)
        steps = {"minigrad fused": fused[0], "minigrad composed": minigrad_step(mode, False, x, gy, args.device)[0]}
        if torch is not None and args.device == "cpu":
            theirs = torch_step(torch, mode, fused[1], x, gy)
            check_same(mode, fused, theirs)
            steps[f"PyTorch nn.{mode}"] = theirs[0]
        res = interleaved(steps, repeat)
        base = res["minigrad fused"][1]
        for name, (wall, cpu, lo, hi) in res.items():
            rows.append([mode, name, f"{cpu * 1e3:.2f}", f"{cpu / base:.2f}", f"{wall * 1e3:.2f}",
                         f"{lo * 1e3:.2f}–{hi * 1e3:.2f}"])
    header = ["layer", "implementation", "CPU ms (median)", "CPU ÷ fused", "wall ms (median)", "wall min–max ms"]
    table = markdown_table(header, rows)
    text = (f"# GRU and LSTM layers: forward + backward\n\n"
            f"Measured {today()} on {machine(args.device)} (device {args.device}), load average "
            f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run; {threads}. "
            f"One layer, input ({T}, {B}, {I}) float32, hidden size {H}, zero initial state, backward of a "
            f"fixed random gradient of the output to the "
            f"input and every parameter; medians of {repeat} rounds from one run of "
            f"`python -m benchmarks.bench_rnn{' --quick' if args.quick else ''}`.\n\n{table}\n\n"
            "*minigrad fused*: each time step is one `GRUStep` / `LSTMStep` Function with the analytic backward of "
            "docs/derivations/rnn.md; *minigrad composed*: `fused=False`, each step built from about a dozen "
            "primitive ops and differentiated by the engine (the path with second derivatives); *PyTorch*: "
            "`torch.nn.GRU` / `torch.nn.LSTM` with the same weights (checked to give the same gradients before "
            "timing). PyTorch's CPU LSTM runs the whole sequence, forward and backward, in one oneDNN kernel "
            "(`mkldnn_rnn_layer`); its GRU is composed per step in C++. When other jobs share the VM's 2 cores, wall "
            "time includes waiting for a core; process CPU time (every engine on one thread) does not.\n")
    print(text)
    if not args.quick:
        write_page(page("rnn", args.device, args.out), text)


if __name__ == "__main__":
    main()
