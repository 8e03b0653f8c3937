"""Train on single digits, test on two digits side by side: a CNN + capsule head against a CNN + pooling head.

The same small CNN (conv5/2-BN-ReLU, conv3-BN-ReLU, conv3-ReLU) feeds either a Capsule layer with shared
weights (every spatial position is one input capsule, so a wider image just brings more capsules; the lengths of
the 10 output capsules are the class scores) or global average pooling + Linear-ReLU-Linear-sigmoid. Both are
trained with the margin loss on single MNIST digits. Test images join two different test digits side by side
(28×56); a prediction counts when the two highest scores are the two digits ("top-2"), and in the strict count
when both of those scores are also > 0.5. Every routing variant is trained; each trained capsule head is then
routed with other iteration counts at test time, and the soft k-means objective of every routing rule is traced
over iterations on the head's own predictions (minigrad.models.capsule.soft_kmeans_objective). A run whose single-digit
accuracy stays at chance is counted apart in the summary (``--w-scale`` changes the capsule weights' initial
scale, which decides how often that happens).

To stay within minutes on a CPU the training set is subsampled (``n_train``) and the CNN is narrower than in the
seed's experiment; both are printed and saved with the results. Without MNIST the 8×8 digits are used instead.
Results and their reading: docs/derivations/capsule.md, section 5.
"""
import time

import numpy as np

import minigrad as mg
from minigrad import nn, optim
from minigrad.models.capsule import (VARIANTS, Capsule, capsule_lengths, capsule_margin_loss, dynamic_routing,
                                     soft_kmeans_objective)
from examples.common import (distributed_setup, load_or_digits, mean_std, output_dir, parser, predict,
                             save_results)

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
def trunk(channels, small):
    """Conv5/2-BN-ReLU, conv3-BN-ReLU, conv3-ReLU: 28×28 → 8×8 positions (28×56 → 8×22); 8×8 digits keep 8×8."""
    c1, c2, c3 = channels
    k, s, p = (3, 1, 1) if small else (5, 2, 0)
    return nn.Sequential(nn.Conv2d(1, c1, k, stride=s, padding=p), nn.BatchNorm2d(c1), nn.ReLU(),
                         nn.Conv2d(c1, c2, 3, padding=p), nn.BatchNorm2d(c2), nn.ReLU(),
                         nn.Conv2d(c2, c3, 3, padding=p), nn.ReLU())


class CapsuleHead(nn.Module):
    """CNN features (B, C, H, W) → H·W input capsules of dim C → 10 capsules of dim 16 → their lengths."""

    def __init__(self, channels, small, routing, iterations=3, out_dim=16):
        super().__init__()
        self.cnn = trunk(channels, small)
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

    def __init__(self, channels, small, hidden=128):
        super().__init__()
        self.cnn = trunk(channels, small)
        self.fc = nn.Sequential(nn.Linear(channels[-1], hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return mg.sigmoid(self.fc(mg.mean(self.cnn(x), axis=(2, 3))))


def make(head, channels, small, w_scale=1.0):
    """A model; ``w_scale`` multiplies the capsule layer's initial (Glorot-uniform) weights."""
    if head == "pooling":
        return PoolingHead(channels, small)
    model = CapsuleHead(channels, small, routing=head.split("-", 1)[1])
    model.caps.weight.data *= w_scale
    return model


# ---- training and scoring ---------------------------------------------------------------------------------------
def train(model, X, y, epochs, batch_size, lr, seed, device, lam, log, distributed=False):
    """Adam on shuffled batches. ``distributed``: every rank draws the same batches and trains on its share
    (rank r takes every N-th sample) while DistributedDataParallel averages the gradients."""
    world, rank = (mg.distributed.get_world_size(), mg.distributed.get_rank()) if distributed else (1, 0)
    net = nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    model.train()
    for epoch in range(epochs):
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
    model.eval()


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
def run(device="cpu", quick=False, out_dir=None, seed=0, n_seeds=4, n_train=10000, epochs=3, batch_size=64,
        lr=3e-3, channels=(32, 32, 64), lam=0.25, n_test=2000, n_pairs=2000, heads=HEADS, w_scale=1.0,
        distributed=False, **kw):
    """Train every head for every seed; return single-digit and two-digit scores and the objective traces.
    ``distributed``: data-parallel training over the ranks of ``mpiexec -n N`` (each scores on its own)."""
    distributed_setup(distributed)
    out_dir = output_dir(out_dir, NAME)
    if quick:
        n_seeds, n_train, epochs, channels, n_test, n_pairs = 1, 128, 1, (4, 8, 8), 100, 100
    Xtr_all, ytr_all, Xte, yte, used = load_or_digits("mnist")
    small = Xtr_all.shape[-1] < 28                                 # 8×8 digits: padded stride-1 convolutions
    Xte, yte = Xte[:n_test], yte[:n_test]
    config = {"dataset": used, "n_train": min(n_train, len(Xtr_all)), "of": len(Xtr_all), "epochs": epochs,
              "batch_size": batch_size, "lr": lr, "channels": list(channels), "small_images": small, "lam": lam,
              "squash_c": 0.5, "iterations": 3, "w_scale": w_scale, "n_test": len(Xte), "n_seeds": n_seeds,
              "device": device, "quick": quick}
    print(f"[{NAME}] {used}: {config['n_train']} of {len(Xtr_all)} training images, {epochs} epoch(s), CNN channels "
          f"{channels}, {len(Xte)} single-digit and up to {n_pairs} two-digit test images, {n_seeds} seed(s)")
    runs = []
    for s in range(seed, seed + n_seeds):
        sub = np.random.default_rng(s).permutation(len(Xtr_all))[:n_train]
        Xtr, ytr = Xtr_all[sub].astype(np.float32), ytr_all[sub]
        X2, pairs = two_digit_set(Xte, yte, n_pairs, seed=1000 + s)
        for head in heads:
            mg.manual_seed(s)
            model = make(head, channels, small, w_scale).to(device)
            print(f"[{NAME}] seed {s}, {head} head ({sum(p.size for p in model.parameters()):,} parameters)")
            t0 = time.time()
            train(model, Xtr, ytr, epochs, batch_size, lr, s, device, lam, print, distributed)
            S1 = predict(model, Xte, device)
            row = {"seed": s, "head": head, "train_seconds": round(time.time() - t0, 1),
                   "single_acc": float((S1.argmax(1) == yte).mean()),
                   "single_classes_gt_0.5_mean": float((S1 > 0.5).sum(axis=1).mean())}
            row.update(two_digit_metrics(predict(model, X2, device), pairs))
            if head != "pooling":
                n_obj, max_iter = (20, 3) if quick else (200, 10)
                row["top2_by_test_iterations"] = iteration_sweep(model, X2, pairs, device,
                                                                 (1, 3) if quick else (1, 2, 3, 5, 10))
                row["objective"] = objective_trace(model, X2[:n_obj], device, max_iter)
                row["objective_single"] = objective_trace(model, Xte[:n_obj], device, max_iter)
            runs.append(row)
            print(f"[{NAME}] seed {s}, {head}: single-digit acc {row['single_acc']:.4f} | two digits: top-2 "
                  f"{row['top2']:.4f}, top-2 with both > 0.5 {row['top2_both_gt_0.5']:.4f} | "
                  f"{row['train_seconds']:.0f}s")
    summary = {}
    keys = ("single_acc", "top2", "top2_both_gt_0.5")
    for head in heads:
        rows = [r for r in runs if r["head"] == head]
        trained = [r for r in rows if r["single_acc"] > 0.5]          # a run stuck at chance is counted apart
        summary[head] = {k: mean_std([r[k] for r in rows]) for k in keys}
        summary[head]["trained_runs"] = f"{len(trained)}/{len(rows)}"
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
    if "pooling" in summary:
        metrics["pooling_top2"] = summary["pooling"]["top2"]["mean"]
    save_results(out_dir, metrics)
    return metrics


def main():
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=4, help="number of seeds")
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--heads", default=",".join(HEADS), help=f"comma-separated subset of {','.join(HEADS)}")
    p.add_argument("--w-scale", type=float, default=1.0, help="scale of the capsule layer's initial weights")
    a = p.parse_args()
    heads = tuple(h for h in a.heads.split(",") if h)
    unknown = [h for h in heads if h not in HEADS]
    if unknown:
        p.error(f"unknown head(s) {unknown}; choose from {HEADS}")
    run(device=a.device, quick=a.quick, out_dir=a.out, seed=a.seed, n_seeds=a.seeds, n_train=a.n_train,
        epochs=a.epochs, heads=heads, w_scale=a.w_scale, distributed=a.distributed)


if __name__ == "__main__":
    main()
