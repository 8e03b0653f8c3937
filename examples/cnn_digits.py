"""A small CNN trained on MNIST (or scikit-learn's 8×8 digits when MNIST is absent), with a checkpoint round trip.

    python -m examples run cnn_digits [--device cuda] [--quick]
    mpiexec -n 2 python -m examples run cnn_digits --distributed    # data-parallel: each rank half of a batch
"""
import json
import time

import minigrad as mg
from minigrad import nn
from minigrad.data import DataLoader, DatasetNotFound, DistributedSampler, load_digits, load_mnist
from minigrad.optim import Adam
from minigrad.utils import progress
from examples.common import distributed_setup, is_main_rank, output_dir, parser, predict

NAME = "cnn_digits"
DESCRIPTION = "CNN on MNIST (digits fallback): test accuracy, checkpoint save/load"
HEADLINE = "a small CNN learns MNIST in one epoch"
QUICK_SHOWS_HEADLINE = False  # --quick trains on 640 images: a smoke run


def headline(m):
    """(shown, numbers) for the demo table."""
    return (m["dataset"] == "mnist" and m["test_accuracy"] > 0.95,
            f"{m['dataset']} test accuracy {m['test_accuracy']:.3f} after {m['epochs']} epoch(s) "
            f"({m['train_seconds']:.0f} s of training), reloaded checkpoint {m['reloaded_accuracy']:.3f}")


class SmallCNN(nn.Module):
    """conv-relu-conv-relu-pool (×2 on 28×28 input) then a linear classifier."""

    def __init__(self, side):
        super().__init__()
        blocks = [nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                  nn.MaxPool2d(2)]
        if side > 8:
            blocks += [nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        out = side // (4 if side > 8 else 2)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * out * out, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def load(dataset, quick):
    if dataset in ("auto", "mnist"):
        try:
            d = load_mnist(download=True)
            train, test = d["train"], d["test"]
            if quick:
                train, test = (train[0][:640], train[1][:640]), (test[0][:500], test[1][:500])
            return "mnist", train, test
        except DatasetNotFound as e:
            if dataset == "mnist":
                raise
            print(f"notice: MNIST is not available ({e}); falling back to scikit-learn's 8×8 digits")
    d = load_digits()
    return "digits", d["train"], d["test"]


def evaluate(model, X, y, device):
    return float((predict(model, X, device).argmax(axis=1) == y).mean())


def run(device="cpu", quick=False, out_dir=None, seed=0, dataset="auto", epochs=None, distributed=False):
    """Train and score the CNN. ``distributed``: under ``mpiexec -n N`` each rank takes 64/N samples of every
    64-sample batch (DistributedSampler) and DistributedDataParallel averages the gradients, so the steps are
    those of one process; rank 0 scores and saves."""
    rank, world = distributed_setup(distributed)
    out_dir = output_dir(out_dir, NAME)
    mg.manual_seed(seed)
    name, (Xtr, ytr), (Xte, yte) = load(dataset, quick)
    side = Xtr.shape[-1]
    epochs = epochs or (1 if quick or name == "mnist" else 30)
    model = SmallCNN(side).to(device)
    net = nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = Adam(net.parameters(), lr=2e-3)
    sampler = DistributedSampler((Xtr, ytr), seed=seed) if distributed else None
    loader = DataLoader((Xtr, ytr), batch_size=max(1, 64 // world), shuffle=not distributed, seed=seed,
                        device=device, sampler=sampler)
    start = time.perf_counter()
    for epoch in range(epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        bar = progress(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=rank != 0)
        for xb, yb in bar:
            loss = mg.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    train_seconds = time.perf_counter() - start
    acc = evaluate(model, Xte, yte, device)

    path = out_dir / "cnn.ckpt"
    if is_main_rank():
        mg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epochs}, path)
    if distributed:
        mg.distributed.barrier()
    restored = SmallCNN(side).to(device)
    state = mg.load(path, device=device)
    restored.load_state_dict(state["model"])
    acc_restored = evaluate(restored, Xte, yte, device)
    print(f"{name}: test accuracy {acc:.4f} after {epochs} epoch(s) in {train_seconds:.1f}s; "
          f"reloaded checkpoint gives {acc_restored:.4f}")
    return {"dataset": name, "test_accuracy": acc, "reloaded_accuracy": acc_restored, "epochs": epochs,
            "train_seconds": round(train_seconds, 1), "device": device, "processes": world}


def main(argv=None):
    """The command line: parse ``argv`` (default: sys.argv[1:]), run, and return the metrics."""
    p = parser(DESCRIPTION)
    p.add_argument("--dataset", default="auto", choices=["auto", "mnist", "digits"])
    p.add_argument("--epochs", type=int, default=None)
    a = p.parse_args(argv)
    metrics = run(a.device, a.quick, a.out, a.seed, a.dataset, a.epochs, a.distributed)
    print(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    main()
