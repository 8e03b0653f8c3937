"""Train on single digits, test on two digits side by side: a CNN + capsule head against a CNN + pooling head.

The seed's CNN (conv3-conv3-avgpool-conv3-conv3, ReLU, 64 and 128 channels) feeds either a Capsule layer with
shared weights (every spatial position is one input capsule, so a wider image just brings more capsules; the
lengths of the 10 output capsules are the class scores) or global average pooling + Linear-ReLU-Linear-sigmoid.
Both are trained with the margin loss on single MNIST digits (the whole 60,000-image training set: the 50k train
and 10k validation splits). Test images join two different test digits side by side (28×56); a prediction
counts when the two highest scores are the two digits ("top-2"), and in the strict count when both of those
scores are also > 0.5. Every routing variant is trained; each trained capsule head is then routed with other
iteration counts at test time, and the soft k-means objective of every routing rule is traced over iterations
on the head's own predictions (minigrad.models.capsule.soft_kmeans_objective). A run whose single-digit accuracy stays
at chance is counted apart in the summary. ``--trunk bn`` selects the narrower strided trunk with batch norm
of the first version (its ReLU features start large and alike, which saturates the squash: derivation §5), and
``--w-scale`` changes the capsule weights' initial scale.

Defaults are the seed's protocol (hours on a CPU); ``--n-train``, ``--epochs``, ``--channels`` and ``--seeds``
scale it down, and every setting is saved with the results. A full run keeps a checkpoint per head and seed in its
output folder after every epoch: the same command started again resumes a stopped run. Without MNIST the 8×8
digits are used instead.
Results and their reading: docs/derivations/capsule.md, section 5.
"""
import copy
import json
import time

import numpy as np

import minigrad as mg
from minigrad import data, nn, optim
from minigrad.models.capsule import (VARIANTS, Capsule, capsule_lengths, capsule_margin_loss, dynamic_routing,
                                     soft_kmeans_objective)
from examples.common import (distributed_setup, load_or_digits, mean_std, output_dir, parser, predict,
                             resume_checkpoint, save_checkpoint, save_results)

NAME = "capsule_two_digits"
DESCRIPTION = "Capsule vs pooling head: trained on single MNIST digits, tested on two digits side by side"
HEADLINE = "capsule beats pooling on two digits"
QUICK_SHOWS_HEADLINE = False


def headline(m):
    """(shown, numbers) for the demo table."""
    cap, pool = m.get("capsule_best_top2", 0.0), m.get("pooling_top2", 0.0)
    return cap > pool + 0.1, f"two-digit top-2: capsule {cap:.3f} vs pooling {pool:.3f} ({m['dataset']})"
HEADS = ("pooling",) + tuple(f"capsule-{v}" for v in VARIANTS)


# ---- data -------------------------------------------------------------------------------------------------------
def two_digit_set(X, y, n, seed):
    """Up to n images of two different digits side by side (N, 1, H, 2W) and their sorted label pairs (N, 2)."""
    rng = np.random.default_rng(seed)
    a = rng.permutation(len(X))
    b = rng.permutation(len(X))
    keep = y[a] != y[b]
    a, b = a[keep][:n], b[keep][:n]
    return np.concatenate([X[a], X[b]], axis=3), np.sort(np.stack([y[a], y[b]], 1), axis=1)


# ---- models -----------------------------------------------------------------------------------------------------
def trunk(channels, small, kind="seed"):
    """The CNN before the head. "seed": conv3(c1)-ReLU-conv3(c1)-ReLU-avgpool2-conv3(c2)-ReLU-conv3(c2)-ReLU as in the
    seed (Glorot-uniform kernels), 28×28 → 8×8 positions (28×56 → 8×22); "bn": conv5/2(c1)-BN-ReLU-conv3(c2)-BN-
    ReLU-conv3(c3)-ReLU, the same sizes. 8×8 digits keep their size through padded convolutions (4×4 after the
    seed's pooling)."""
    p = 1 if small else 0
    if kind == "seed":
        c1, c2 = channels
        net = nn.Sequential(nn.Conv2d(1, c1, 3, padding=p), nn.ReLU(), nn.Conv2d(c1, c1, 3, padding=p), nn.ReLU(),
                            nn.AvgPool2d(2), nn.Conv2d(c1, c2, 3, padding=p), nn.ReLU(),
                            nn.Conv2d(c2, c2, 3, padding=p), nn.ReLU())
        for layer in net:                      # Keras's defaults, as in the seed: Glorot-uniform kernels, zero bias
            if isinstance(layer, nn.Conv2d):   # (the PyTorch-style default starts ~1.7× smaller per layer: slow start)
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        return net
    if kind != "bn":
        raise ValueError(f"trunk: kind must be 'seed' or 'bn', got {kind!r}")
    c1, c2, c3 = channels
    k, s, p = (3, 1, 1) if small else (5, 2, 0)
    return nn.Sequential(nn.Conv2d(1, c1, k, stride=s, padding=p), nn.BatchNorm2d(c1), nn.ReLU(),
                         nn.Conv2d(c1, c2, 3, padding=p), nn.BatchNorm2d(c2), nn.ReLU(),
                         nn.Conv2d(c2, c3, 3, padding=p), nn.ReLU())


class CapsuleHead(nn.Module):
    """CNN features (B, C, H, W) → H·W input capsules of dim C → 10 capsules of dim 16 → their lengths."""

    def __init__(self, channels, small, routing, iterations=3, out_dim=16, kind="seed"):
        super().__init__()
        self.cnn = trunk(channels, small, kind)
        self.caps = Capsule(None, 10, channels[-1], out_dim, shared=True, routing=routing, iterations=iterations,
                            squash_c=0.5)

    def capsules_in(self, x):
        h = self.cnn(x)
        B, C, H, W = h.shape
        return mg.transpose(mg.reshape(h, (B, C, H * W)), (0, 2, 1))

    def forward(self, x):
        return capsule_lengths(self.caps(self.capsules_in(x)))


class PoolingHead(nn.Module):
    """CNN features → global average pooling → Linear(C, 128) → ReLU → Linear(128, 10) → sigmoid scores."""

    def __init__(self, channels, small, hidden=128, kind="seed"):
        super().__init__()
        self.cnn = trunk(channels, small, kind)
        self.fc = nn.Sequential(nn.Linear(channels[-1], hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return mg.sigmoid(self.fc(mg.mean(self.cnn(x), axis=(2, 3))))


def make(head, channels, small, w_scale=1.0, kind="seed"):
    """A model; ``w_scale`` multiplies the capsule layer's initial (Glorot-uniform) weights."""
    if head == "pooling":
        return PoolingHead(channels, small, kind=kind)
    model = CapsuleHead(channels, small, routing=head.split("-", 1)[1], kind=kind)
    model.caps.weight.data *= w_scale
    return model


# ---- training and scoring ---------------------------------------------------------------------------------------
def train(model, X, y, epochs, batch_size, lr, seed, device, lam, log, after_epoch=None, distributed=False,
          checkpoint=None, settings="", curve=None):
    """Adam on the margin loss; ``after_epoch(epoch, mean loss, seconds)`` is called after every epoch (in eval
    mode; training mode is restored afterwards). ``distributed``: every rank draws the same batches and trains on
    its share (rank r takes every N-th sample) while DistributedDataParallel averages the gradients.
    ``checkpoint``: a file written after every epoch (model, optimizer, shuffling generator and the list
    ``curve``); when it exists with the same ``settings``, training resumes after its epoch."""
    world, rank = (mg.distributed.get_world_size(), mg.distributed.get_rank()) if distributed else (1, 0)
    net = nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    curve = [] if curve is None else curve
    objects, generators = {"model": model, "optimizer": opt}, {"shuffle": rng}
    start, extra = resume_checkpoint(checkpoint, settings, device, objects, generators, NAME)
    if extra is not None:
        curve[:] = list(extra["curve"])
        log(f"    resumed from {checkpoint} after epoch {start}")
    model.train()
    for epoch in range(start, epochs):
        t0, tot, n = time.time(), 0.0, 0
        for idx in np.array_split(rng.permutation(len(X)), max(1, len(X) // batch_size)):
            idx = idx[rank::world] if len(idx) >= world else idx
            loss = capsule_margin_loss(net(mg.tensor(X[idx], device=device)), y[idx], lam=lam)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
            n += len(idx)
        log(f"    epoch {epoch + 1}/{epochs}: margin loss {tot / n:.4f} ({time.time() - t0:.0f}s)")
        if after_epoch is not None:
            model.eval()
            after_epoch(epoch + 1, tot / n, time.time() - t0)
            model.train()
        if checkpoint is not None:
            save_checkpoint(checkpoint, settings, epoch + 1, objects, generators, curve=curve)
    model.eval()


def initial_lengths(model, X, device):
    """Mean and minimum class score of an untrained head on a batch, as training sees it (training mode: batch
    statistics in batch norm; measured on a copy, so the running statistics stay untouched). Near 1 means squashed
    capsules that start where the length hardly moves (derivation §5)."""
    probe = copy.deepcopy(model)
    probe.train()
    with mg.no_grad():
        S = probe(mg.tensor(X, device=device)).numpy()
    return {"mean": float(S.mean()), "min": float(S.min())}


def saturated_classes(S, level=0.99):
    """Classes whose score is above ``level`` on every image: a capsule squashed to length ≈ 1 whatever the input,
    where the squash is flat and the margin loss cannot pull it down (what a head stuck at chance shows)."""
    return int((S.min(axis=0) > level).sum())


def two_digit_metrics(S, pairs):
    top2 = np.sort(np.argsort(S, axis=1)[:, -2:], axis=1)
    hit = (top2 == pairs).all(axis=1)
    confident = np.sort(S, axis=1)[:, -2] > 0.5
    return {"top2": float(hit.mean()), "top2_both_gt_0.5": float((hit & confident).mean()),
            "second_score_mean": float(np.sort(S, axis=1)[:, -2].mean()),
            "third_score_mean": float(np.sort(S, axis=1)[:, -3].mean()),
            "classes_gt_0.5_mean": float((S > 0.5).sum(axis=1).mean())}


# ---- the clustering view ----------------------------------------------------------------------------------------
def objective_trace(model, X, device, max_iter=10):
    """Soft k-means objective L(v_t) of each routing variant's iterates on this model's predictions û.

    v_t is the centre after t routing passes (t = 0: v = 0), taken as a unit vector; "kmeans" routing is the
    fixed-point iteration of this L, the other two iterate other maps and are traced for comparison.
    """
    with mg.no_grad():
        u_hat = model.caps.predictions(model.capsules_in(mg.tensor(X, device=device))).astype("float64")
        out = {}
        for variant in VARIANTS:
            L, steps, prev = [], [], None
            for t in range(max_iter + 1):
                if t == 0:
                    v = np.zeros((len(X),) + u_hat.shape[2:])
                else:
                    v = dynamic_routing(u_hat, t, variant).numpy()
                    v = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-300)
                L.append(soft_kmeans_objective(u_hat, mg.tensor(v, dtype="float64", device=device)).numpy())
                if prev is not None:
                    steps.append(float(np.abs(v - prev).max(axis=(1, 2)).mean()))
                prev = v
            L = np.stack(L)                                        # (max_iter + 1, N)
            dL = np.diff(L, axis=0)
            scale = np.abs(L).max(axis=0) * 1e-12                  # float64 round-off of L
            out[variant] = {"mean_L": L.mean(1).round(4).tolist(),
                            "frac_decreasing": (dL < -scale).mean(1).round(4).tolist(),
                            "frac_increasing": (dL > scale).mean(1).round(4).tolist(),
                            "mean_max_abs_dv": [round(s, 6) for s in steps]}
    return out


def iteration_sweep(model, X, pairs, device, iterations=(1, 2, 3, 5, 10), batch_size=500):
    """Two-digit top-2 of a trained capsule head when routed with another number of iterations at test time
    (1 = no routing: c_ij = 1/J)."""
    with mg.no_grad():
        u = [model.caps.predictions(model.capsules_in(mg.tensor(X[i:i + batch_size], device=device)))
             for i in range(0, len(X), batch_size)]
        out = {}
        for T in iterations:
            S = np.concatenate([dynamic_routing(x, T, model.caps.routing, model.caps.squash_c).numpy() for x in u])
            out[str(T)] = two_digit_metrics(np.linalg.norm(S, axis=-1), pairs)["top2"]
    return out


# ---- run --------------------------------------------------------------------------------------------------------
QUICK = {"n_seeds": 1, "n_train": 128, "epochs": 1, "channels": (4, 8), "n_test": 100, "n_pairs": 100}


def run(device="cpu", quick=False, out_dir=None, seed=0, n_seeds=1, n_train=None, epochs=10, pooling_epochs=20,
        batch_size=128, lr=1e-3, channels=(64, 128), trunk_kind="seed", lam=0.25, n_test=None, n_pairs=10000,
        n_curve=2000, heads=HEADS, w_scale=1.0, distributed=False, **kw):
    """Train every head for every seed; return single-digit and two-digit scores, learning curves and the
    objective traces. Defaults: the seed's protocol (all 60,000 training digits, the seed's CNN, 10 epochs for a
    capsule head and 20 for the pooling one, batch 128, Adam 1e-3, every test digit). ``distributed``:
    data-parallel training over the ranks of ``mpiexec -n N`` (each scores on its own)."""
    distributed_setup(distributed)
    out_dir = output_dir(out_dir, NAME)
    if quick:
        n_seeds, n_train, epochs, channels, n_test, n_pairs = (QUICK[k] for k in (
            "n_seeds", "n_train", "epochs", "channels", "n_test", "n_pairs"))
        pooling_epochs, n_curve = epochs, 50
        if trunk_kind == "bn":
            channels = (4, 8, 8)
    try:                                                           # the seed trains on all 60,000 digits
        d = data.load_mnist(download=True)
        Xtr_all, ytr_all = (np.concatenate([d["train"][i], d["val"][i]]) for i in (0, 1))
        Xte, yte, used = *d["test"], "mnist"
    except (ImportError, OSError):                                 # load_or_digits says why and falls back
        Xtr_all, ytr_all, Xte, yte, used = load_or_digits("mnist")
    small = Xtr_all.shape[-1] < 28                                 # 8×8 digits: padded stride-1 convolutions
    n_train = len(Xtr_all) if n_train is None else min(n_train, len(Xtr_all))
    Xte, yte = Xte[:n_test], yte[:n_test]
    config = {"dataset": used, "n_train": n_train, "of": len(Xtr_all), "epochs": epochs,
              "pooling_epochs": pooling_epochs, "batch_size": batch_size, "lr": lr, "channels": list(channels),
              "trunk": trunk_kind, "small_images": small, "lam": lam, "squash_c": 0.5, "iterations": 3,
              "w_scale": w_scale, "n_test": len(Xte), "n_pairs": n_pairs, "n_seeds": n_seeds, "seed": seed,
              "heads": list(heads), "device": device, "quick": quick}
    print(f"[{NAME}] {used}: {n_train} of {len(Xtr_all)} training images, {epochs} epoch(s) ({pooling_epochs} for "
          f"pooling), {trunk_kind} CNN {channels}, {len(Xte)} single-digit and up to {n_pairs} two-digit test "
          f"images, {n_seeds} seed(s)", flush=True)
    runs = []
    for s in range(seed, seed + n_seeds):
        sub = np.random.default_rng(s).permutation(len(Xtr_all))[:n_train]
        Xtr, ytr = Xtr_all[sub].astype(np.float32), ytr_all[sub]
        X2, pairs = two_digit_set(Xte, yte, n_pairs, seed=1000 + s)
        c1, c2, pc = Xte[:n_curve], yte[:n_curve], min(n_curve // 2, len(X2))
        for head in heads:
            mg.manual_seed(s)
            model = make(head, channels, small, w_scale, trunk_kind).to(device)
            print(f"[{NAME}] seed {s}, {head} head ({sum(p.size for p in model.parameters()):,} parameters)",
                  flush=True)
            row = {"seed": s, "head": head, "initial_length": initial_lengths(model, Xtr[:256], device),
                   "curve": []}

            def after_epoch(epoch, loss, seconds, model=model, row=row):
                S1, S2 = predict(model, c1, device), predict(model, X2[:pc], device)
                point = {"epoch": epoch, "loss": loss, "seconds": round(seconds, 1),
                         "single_acc": float((S1.argmax(1) == c2).mean()),
                         "top2": two_digit_metrics(S2, pairs[:pc])["top2"],
                         "saturated_classes": saturated_classes(S1)}
                row["curve"].append(point)
                print(f"    after epoch {epoch}: single-digit acc {point['single_acc']:.4f}, two-digit top-2 "
                      f"{point['top2']:.4f} (first {len(c1)} / {pc} test images)", flush=True)
                save_results(out_dir, {"config": config, "finished": runs, "in_progress": row}, "progress.json")

            t0 = time.time()
            ckpt = None if quick or distributed else out_dir / f"checkpoint-{head}-seed{s}.mg"
            settings = json.dumps({k: config[k] for k in ("dataset", "n_train", "batch_size", "lr", "channels",
                                                          "trunk", "lam", "w_scale")} | {"head": head, "seed": s},
                                  sort_keys=True)
            train(model, Xtr, ytr, pooling_epochs if head == "pooling" else epochs, batch_size, lr, s, device, lam,
                  lambda m: print(m, flush=True), after_epoch, distributed, ckpt, settings, row["curve"])
            S1 = predict(model, Xte, device)
            row.update({"train_seconds": round(time.time() - t0, 1),
                        "single_acc": float((S1.argmax(1) == yte).mean()),
                        "saturated_classes": saturated_classes(S1),
                        "single_classes_gt_0.5_mean": float((S1 > 0.5).sum(axis=1).mean())})
            row.update(two_digit_metrics(predict(model, X2, device), pairs))
            row["n_pairs"] = len(X2)
            if head != "pooling":
                n_obj, max_iter = (20, 3) if quick else (200, 10)
                row["top2_by_test_iterations"] = iteration_sweep(model, X2, pairs, device,
                                                                 (1, 3) if quick else (1, 2, 3, 5, 10))
                row["objective"] = objective_trace(model, X2[:n_obj], device, max_iter)
                row["objective_single"] = objective_trace(model, Xte[:n_obj], device, max_iter)
            runs.append(row)
            print(f"[{NAME}] seed {s}, {head}: single-digit acc {row['single_acc']:.4f} | two digits: top-2 "
                  f"{row['top2']:.4f}, top-2 with both > 0.5 {row['top2_both_gt_0.5']:.4f} | "
                  f"{row['train_seconds']:.0f}s", flush=True)
    summary = {}
    keys = ("single_acc", "top2", "top2_both_gt_0.5")
    for head in heads:
        rows = [r for r in runs if r["head"] == head]
        trained = [r for r in rows if r["single_acc"] > 0.5]          # a run stuck at chance is counted apart
        summary[head] = {k: mean_std([r[k] for r in rows]) for k in keys}
        summary[head]["trained_runs"] = f"{len(trained)}/{len(rows)}"
        summary[head]["n_trained"], summary[head]["n_runs"] = len(trained), len(rows)
        summary[head]["trained"] = {k: mean_std([r[k] for r in trained]) for k in keys} if trained else None
    print(f"\n[{NAME}] {used}, mean ± std over {n_seeds} seed(s) (runs that trained: single-digit acc > 0.5):")
    print("| head | runs trained | single-digit acc | two digits: top-2 | top-2 and both > 0.5 |")
    print("|---|---|---|---|---|")
    for head, m in summary.items():
        print(f"| {head} | {m['trained_runs']} | " + " | ".join(f"{m[k]['mean']:.4f} ± {m[k]['std']:.4f}"
                                                               for k in keys) + " |")
    metrics = {"dataset": used, "config": config, "summary": summary, "runs": runs}
    best = max((h for h in heads if h != "pooling"), key=lambda h: summary[h]["top2"]["mean"], default=None)
    if best is not None:
        metrics["capsule_best_top2"] = summary[best]["top2"]["mean"]
        metrics["capsule_best_head"] = best
    if "pooling" in summary:
        metrics["pooling_top2"] = summary["pooling"]["top2"]["mean"]
    save_results(out_dir, metrics)
    return metrics


def main(argv=None):
    """The command line: parse ``argv`` (default: sys.argv[1:]), run, and return the metrics."""
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (from --seed on)")
    p.add_argument("--n-train", type=int, default=None, help="training digits (default: all 60,000)")
    p.add_argument("--epochs", type=int, default=10, help="epochs of a capsule head")
    p.add_argument("--pooling-epochs", type=int, default=20, help="epochs of the pooling head")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--channels", default=None, help="CNN widths, comma-separated (seed trunk: 64,128)")
    p.add_argument("--trunk", default="seed", choices=("seed", "bn"))
    p.add_argument("--n-test", type=int, default=None, help="single test digits (default: all)")
    p.add_argument("--pairs", type=int, default=10000, help="two-digit test images drawn (equal pairs dropped)")
    p.add_argument("--heads", default=",".join(HEADS), help=f"comma-separated subset of {','.join(HEADS)}")
    p.add_argument("--w-scale", type=float, default=1.0, help="scale of the capsule layer's initial weights")
    a = p.parse_args(argv)
    heads = tuple(h for h in a.heads.split(",") if h)
    unknown = [h for h in heads if h not in HEADS]
    if unknown:
        p.error(f"unknown head(s) {unknown}; choose from {HEADS}")
    channels = (tuple(int(c) for c in a.channels.split(",")) if a.channels else
                (64, 128) if a.trunk == "seed" else (32, 32, 64))
    if len(channels) != (2 if a.trunk == "seed" else 3):
        p.error(f"--channels: the {a.trunk} trunk takes {2 if a.trunk == 'seed' else 3} widths, got {channels}")
    return run(device=a.device, quick=a.quick, out_dir=a.out, seed=a.seed, n_seeds=a.seeds, n_train=a.n_train,
               epochs=a.epochs, pooling_epochs=a.pooling_epochs, batch_size=a.batch_size, lr=a.lr, channels=channels,
               trunk_kind=a.trunk, n_test=a.n_test, n_pairs=a.pairs, heads=heads, w_scale=a.w_scale,
               distributed=a.distributed)


if __name__ == "__main__":
    main()
