"""The seed's convolutional ClusterVAE, one training step (forward, backward, Adam) on a batch of 100 MNIST-sized
images: minigrad against the same model and loss in PyTorch (CPU), side by side, one thread each.

Model: encoder [conv3/2, conv3] × (32, 64) with LeakyReLU(0.2) → μ, log σ² (20); decoder linear → 64×7×7 →
[convT3, convT3/2] × (64, 32) → convT3 → sigmoid; classifier 20 → 256 → 10; loss 2.5·½‖x − x̂‖² + the clustering
KL (models/vae.py). The epoch time is the step time × 600 (60,000 images, batch 100, as the seed trains).

``python -m benchmarks.bench_vae [--quick]`` prints a Markdown table and writes docs/benchmarks/vae.md.
"""
import argparse
import math

import numpy as np


import minigrad as mg  # noqa: E402
from minigrad import optim  # noqa: E402
from benchmarks.common import interleaved, machine, markdown_table, one_thread, page, today, write_page  # noqa: E402
from minigrad.models.vae import ClusterVAE  # noqa: E402

STEPS_PER_EPOCH = 600


def minigrad_step(x):
    mg.manual_seed(0)
    model = ClusterVAE(10, in_shape=(1, 28, 28), arch="conv", channels=(32, 64))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    xb = mg.tensor(x)

    def step():
        loss = model.loss(xb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_step(x):
    import torch
    from torch import nn
    torch.manual_seed(0)
    act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
    enc = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), act(), nn.Conv2d(32, 32, 3, 1, 1), act(),
                        nn.Conv2d(32, 64, 3, 2, 1), act(), nn.Conv2d(64, 64, 3, 1, 1), act(), nn.Flatten())
    to_mu, to_logvar = nn.Linear(64 * 49, 20), nn.Linear(64 * 49, 20)
    dec = nn.Sequential(nn.Linear(20, 64 * 49), nn.Unflatten(1, (64, 7, 7)),
                        nn.ConvTranspose2d(64, 64, 3, 1, 1), act(), nn.ConvTranspose2d(64, 64, 3, 2, 1, 1), act(),
                        nn.ConvTranspose2d(64, 32, 3, 1, 1), act(), nn.ConvTranspose2d(32, 32, 3, 2, 1, 1), act(),
                        nn.ConvTranspose2d(32, 1, 3, 1, 1))
    clf = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    means = nn.Parameter(torch.zeros(10, 20))
    params = [*enc.parameters(), *to_mu.parameters(), *to_logvar.parameters(), *dec.parameters(),
              *clf.parameters(), means]
    opt = torch.optim.Adam(params, lr=1e-3)
    xb = torch.tensor(x)

    def step():
        h = enc(xb)
        mu, logvar = to_mu(h), to_logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        rec = ((torch.sigmoid(dec(z)) - xb) ** 2 * 1.25).flatten(1).sum(1)
        logp = torch.log_softmax(clf(z), -1)
        f = 0.5 * ((z[:, None] - means[None]) ** 2).sum(-1) + logp
        kl = (logp.exp() * f).sum(-1) - 0.5 * logvar.sum(-1) + (math.log(10) - 10.0)
        loss = (rec + kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="batch of 8, few repeats (smoke test)")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--out", default=None, help="default docs/benchmarks/vae.md")
    args = p.parse_args(argv)
    B, repeat = (8, 2) if args.quick else (100, args.repeat)
    x = np.random.default_rng(0).random((B, 1, 28, 28), dtype=np.float32)
    torch, threads = one_thread()
    steps = {"minigrad": minigrad_step(x)}
    if torch is not None:
        steps["PyTorch"] = torch_step(x)
    res = interleaved(steps, repeat)
    base = res["minigrad"][1]
    rows = [[name, f"{cpu * 1e3:.0f}", f"{cpu / base:.2f}", f"{wall * 1e3:.0f}", f"{lo * 1e3:.0f}–{hi * 1e3:.0f}",
             f"{cpu * STEPS_PER_EPOCH / 60:.1f}", f"{cpu * STEPS_PER_EPOCH * 50 / 3600:.1f}"]
            for name, (wall, cpu, lo, hi) in res.items()]
    header = ["engine", "CPU ms per step (median)", "÷ minigrad", "wall ms (median)", "wall min–max ms",
              "epoch of 60k, CPU min", "50 epochs (the seed's run), CPU h"]
    text = (f"# Convolutional ClusterVAE: one training step\n\n"
            f"Measured {today()} on {machine()}; {threads}. Batch of {B} images 1×28×28 float32, forward + "
            f"backward + Adam; medians of {repeat} interleaved repeats from one run of "
            f"`python -m benchmarks.bench_vae{' --quick' if args.quick else ''}`.\n\n{markdown_table(header, rows)}"
            "\n\nThe model is the seed's (models/vae.py, `arch=\"conv\"`); the PyTorch twin has the same layers, "
            "loss and optimizer. The epoch columns extrapolate the CPU time of one step to 600 steps (60,000 "
            "images, batch 100) and to the seed's 50 epochs; wall time on a shared machine is longer.\n")
    print(text)
    if not args.quick:
        write_page(page("vae", "cpu", args.out), text)


if __name__ == "__main__":
    main()
