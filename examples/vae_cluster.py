"""One-step clustering with a VAE whose latent space holds K Gaussians N(μ_y, I), on MNIST and Fashion-MNIST.

The model (models/vae.py: ClusterVAE) is trained without labels; each image's cluster is argmax_y p(y|μ(x)).
Scored on the test split against the labels by three measures — the majority-label accuracy (each cluster takes
its most frequent label), the accuracy under the best one-to-one matching of clusters to labels (Hungarian), and
NMI — next to k-means on raw pixels (fitted on the same training images), over several seeds.

To stay within a few minutes per dataset and seed on a CPU: an MLP encoder/decoder by default (``--arch conv``
is the seed's convolutional model, with ``--init glorot`` for the seed's Keras initialisation; its cost per epoch
against the same model in PyTorch is measured in docs/benchmarks/vae.md: its 50 epochs take hours), 30 epochs
(the recipe trains 50), and ``n_train`` (default: all the training images) to subsample further;
``--with-val`` trains on all 60k training images (the training and validation splits), as the seed's script does.
The settings are printed and saved with the results.
A full run scores the test split after every epoch (``progress.json``) and keeps a checkpoint per data set and
seed in its output folder: the same command started again resumes where a stopped run ended.
"""
import json
import time

import numpy as np

import minigrad as mg
from minigrad import optim
from minigrad.models.vae import ClusterVAE, glorot_init_
from examples.common import (checkpoint_generators, load_or_digits as load, mean_std, output_dir, parser, predict,
                             pyplot, resume_checkpoint, save_checkpoint, save_figure, save_results)

NAME = "vae_cluster"
DESCRIPTION = "ClusterVAE: one-step clustering on MNIST / Fashion-MNIST vs k-means (accuracy, Hungarian, NMI)"
HEADLINE = "ClusterVAE clusters beat chance (0.1)"
QUICK_SHOWS_HEADLINE = True


def headline(m):
    """(shown, numbers) for the demo table: Hungarian-matched cluster accuracy on each data set."""
    acc = {k[:-len("_vae_acc_hungarian")]: v for k, v in m.items() if k.endswith("_vae_acc_hungarian")}
    km = {d: m.get(f"{d}_kmeans_acc_hungarian") for d in acc}
    return (bool(acc) and all(v > 0.15 for v in acc.values()),
            ", ".join(f"{d} {v:.3f} (k-means {km[d]:.3f})" for d, v in acc.items()))


# ---- metrics (host-side NumPy) ---------------------------------------------------------------------------------
def contingency(pred, labels):
    """Counts C[k, c] of inputs in cluster k with label c."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    _, p = np.unique(pred, return_inverse=True)
    _, l = np.unique(labels, return_inverse=True)
    C = np.zeros((p.max() + 1, l.max() + 1), dtype=np.int64)
    np.add.at(C, (p, l), 1)
    return C


def majority_accuracy(pred, labels):
    """Each cluster predicts its most frequent label (several clusters may share one label)."""
    return float(contingency(pred, labels).max(axis=1).sum() / len(labels))


def hungarian_accuracy(pred, labels):
    """Accuracy under the best one-to-one assignment of clusters to labels."""
    from scipy.optimize import linear_sum_assignment
    C = contingency(pred, labels)
    rows, cols = linear_sum_assignment(-C)
    return float(C[rows, cols].sum() / len(labels))


def nmi(pred, labels):
    """Normalised mutual information I(U; V) / ½(H(U) + H(V)) (the arithmetic normalisation)."""
    P = contingency(pred, labels) / len(labels)
    pu, pv = P.sum(1), P.sum(0)
    nz = P > 0
    mi = float((P[nz] * np.log(P[nz] / np.outer(pu, pv)[nz])).sum())
    h = lambda q: float(-(q[q > 0] * np.log(q[q > 0])).sum())
    denom = 0.5 * (h(pu) + h(pv))
    return mi / denom if denom > 0 else 1.0


def scores(pred, labels):
    return {"acc_majority": majority_accuracy(pred, labels), "acc_hungarian": hungarian_accuracy(pred, labels),
            "nmi": nmi(pred, labels)}


# ---- data -----------------------------------------------------------------------------------------------------
def class_names(name):
    if name == "fashion_mnist":
        from minigrad.data import FASHION_MNIST_CLASSES
        return list(FASHION_MNIST_CLASSES)
    return None


def batches(X, batch_size, rng=None):
    idx = np.arange(len(X)) if rng is None else rng.permutation(len(X))
    for i in range(0, len(X), batch_size):
        yield idx[i:i + batch_size]


# ---- training ---------------------------------------------------------------------------------------------------
def train_cluster_vae(Xtr, K, seed, device, epochs, batch_size=100, lr=1e-3, means_lr=1e-2, init="default",
                      log=print, after_epoch=None, checkpoint=None, curve=None, **model_kw):
    """Adam; the class means start at zero and get their own, larger step (``means_lr``) so that they spread
    apart within a few epochs instead of a few dozen. ``init``: ``"default"`` (the layers' own, PyTorch's) or
    ``"glorot"`` (Keras' default, which the seed's script trains with: ``glorot_init_``).
    ``after_epoch(epoch, model, loss, seconds)`` is called after every epoch (the learning curve, kept in the
    list ``curve``).

    ``checkpoint``: a file written after every epoch (model, optimizer, random generators, ``curve``); when it
    exists, training resumes after its epoch, so a run of hours survives being stopped. Its settings must match."""
    mg.manual_seed(seed)
    model = ClusterVAE(K, in_shape=Xtr.shape[1:], **model_kw)
    if init not in ("default", "glorot"):
        raise ValueError(f"train_cluster_vae: init must be 'default' or 'glorot', got {init!r}")
    model = (glorot_init_(model) if init == "glorot" else model).to(device)
    rest = [p for name, p in model.named_parameters() if name != "class_means"]
    opt = optim.Adam([{"params": rest}, {"params": [model.class_means], "lr": means_lr}], lr=lr)
    rng = np.random.default_rng(seed)
    curve = [] if curve is None else curve
    settings = json.dumps({"K": K, "seed": seed, "n": len(Xtr), "batch_size": batch_size, "lr": lr,
                           "means_lr": means_lr, "init": init, **model_kw},
                          sort_keys=True, default=str)
    objects, generators = {"model": model, "optimizer": opt}, checkpoint_generators(device, shuffle=rng)
    start, extra = resume_checkpoint(checkpoint, settings, device, objects, generators, "train_cluster_vae")
    if extra is not None:
        curve[:] = list(extra["curve"])
        log(f"  resumed from {checkpoint} after epoch {start}", flush=True)
    for epoch in range(start, epochs):
        t0, tot, parts, n = time.time(), 0.0, {"reconstruction": 0.0, "kl": 0.0}, 0
        for idx in batches(Xtr, batch_size, rng):
            x = mg.tensor(Xtr[idx], device=device)
            loss, p = model.loss(x, return_parts=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
            for k in parts:
                parts[k] += p[k] * len(idx)
            n += len(idx)
        log(f"  epoch {epoch + 1}/{epochs}: loss {tot / n:.2f} (reconstruction {parts['reconstruction'] / n:.2f}, "
            f"kl {parts['kl'] / n:.2f}) {time.time() - t0:.1f}s", flush=True)
        if after_epoch is not None:
            after_epoch(epoch + 1, model, tot / n, time.time() - t0)
        if checkpoint is not None:
            save_checkpoint(checkpoint, settings, epoch + 1, objects, generators, curve=curve)
    return model


def kmeans_baseline(Xtr, Xte, K, seed, n_init=4):
    from sklearn.cluster import KMeans
    km = KMeans(K, n_init=n_init, random_state=seed).fit(Xtr.reshape(len(Xtr), -1))
    return km.predict(Xte.reshape(len(Xte), -1))


def save_cluster_samples(model, pred, labels, path, n_per_cluster=10, class_names=None):
    """One row per cluster (rows sorted by the cluster's majority label), images decoded from z = μ_y + ε."""
    plt = pyplot()
    imgs = model.sample_clusters(n_per_cluster).numpy()  # (K, n, C, H, W)
    K = imgs.shape[0]
    C = np.zeros((K, int(labels.max()) + 1), dtype=np.int64)
    np.add.at(C, (pred, labels), 1)
    major = C.argmax(1)
    order = np.lexsort((-C.max(1), major))
    fig, axes = plt.subplots(K, n_per_cluster, figsize=(n_per_cluster * 0.6 + 0.9, K * 0.6 + 0.4))
    for r, k in enumerate(order):
        for c in range(n_per_cluster):
            ax = axes[r, c]
            ax.imshow(imgs[k, c, 0], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        name = class_names[major[k]] if class_names else str(major[k])
        text = f"{name} ({C[k].max() / C[k].sum():.0%})" if C[k].sum() else "(empty)"
        axes[r, 0].set_ylabel(text, rotation=0, fontsize=6, ha="right", va="center")
    fig.suptitle("samples per cluster (row: cluster; left: its majority test label and share)", fontsize=7)
    fig.tight_layout(pad=0.2, rect=(0.13, 0, 1, 0.97))
    save_figure(fig, path)


def run(device="cpu", quick=False, out_dir=None, seed=0, datasets=("mnist", "fashion_mnist"), n_seeds=3,
        n_train=None, epochs=30, arch="mlp", latent_dim=20, hidden=256, recon_weight=2.5, lr=1e-3, means_lr=1e-2,
        K=10, init="default", with_val=False, **kw):
    """Train a ClusterVAE per (dataset, seed), score it and k-means on the test split; returns the metrics."""
    out_dir = output_dir(out_dir, NAME)
    n_train = n_train or (60000 if with_val else 50000)
    if quick:
        n_seeds, n_train, epochs = 1, 300, 1
    config = {"n_train": n_train, "epochs": epochs, "n_seeds": n_seeds, "arch": arch, "latent_dim": latent_dim,
              "hidden": hidden, "recon_weight": recon_weight, "lr": lr, "means_lr": means_lr, "batch_size": 100,
              "init": init, "with_val": with_val, "K": K, "device": device, "quick": quick}
    metrics, details = {}, {"config": config}
    for name in datasets:
        Xtr_all, ytr_all, Xte, yte, used = load(name, with_val=with_val)
        if quick:
            Xte, yte = Xte[:300], yte[:300]
        n = min(n_train, len(Xtr_all))
        note = " (a random subsample, to save time)" if n < len(Xtr_all) else ""
        print(f"[{NAME}] {used}: training on {n} of {len(Xtr_all)} training images{note} for {epochs} epochs, "
              f"scoring on {len(Xte)} test images, {n_seeds} seed(s)")
        rows = []
        for s in range(seed, seed + n_seeds):
            sub = np.random.default_rng(s).permutation(len(Xtr_all))[:n]
            Xtr, ytr = Xtr_all[sub].astype(np.float32), ytr_all[sub]
            curve = []

            def after_epoch(epoch, model, loss, seconds, curve=curve, used=used, s=s):
                point = {"epoch": epoch, "loss": loss, "seconds": round(seconds, 1),
                         **scores(predict(model, Xte, device, 1000, fn=model.predict), yte)}
                curve.append(point)
                print(f"    test clusters after epoch {epoch}: acc {point['acc_majority']:.3f} (majority), "
                      f"{point['acc_hungarian']:.3f} (Hungarian), NMI {point['nmi']:.3f}", flush=True)
                save_results(out_dir, {**details, "in_progress": {"dataset": used, "seed": s, "curve": curve}},
                             "progress.json")

            t0 = time.time()
            ckpt = None if quick else out_dir / f"checkpoint-{used}-seed{s}.mg"
            model = train_cluster_vae(Xtr, K, s, device, epochs, lr=lr, means_lr=means_lr, init=init, arch=arch,
                                      latent_dim=latent_dim, hidden=hidden, recon_weight=recon_weight,
                                      after_epoch=after_epoch, checkpoint=ckpt, curve=curve)
            train_s = time.time() - t0
            pred = predict(model, Xte, device, 1000, fn=model.predict)
            train_pred = predict(model, Xtr, device, 1000, fn=model.predict)
            row = {"seed": s, "train_seconds": round(train_s, 1), "vae": scores(pred, yte), "curve": curve,
                   "train_seconds_all_epochs": round(sum(p["seconds"] for p in curve), 1),
                   "vae_train_acc_majority": majority_accuracy(train_pred, ytr)}
            t0 = time.time()
            row["kmeans"] = scores(kmeans_baseline(Xtr, Xte, K, s, n_init=1 if quick else 4), yte)
            row["kmeans_seconds"] = round(time.time() - t0, 1)
            rows.append(row)
            v, k = row["vae"], row["kmeans"]
            print(f"[{NAME}] {used} seed {s}: ClusterVAE acc {v['acc_majority']:.3f} (majority) "
                  f"{v['acc_hungarian']:.3f} (Hungarian) NMI {v['nmi']:.3f} | k-means acc {k['acc_majority']:.3f} / "
                  f"{k['acc_hungarian']:.3f} NMI {k['nmi']:.3f} | train {train_s:.0f}s")
            if s == seed:
                path = out_dir / f"samples_{used}.png"
                save_cluster_samples(model, pred, yte, path, class_names=class_names(used))
                print(f"[{NAME}] samples per cluster saved to {path}")
        summary = {m: {key: mean_std([r[m][key] for r in rows]) for key in ("acc_majority", "acc_hungarian", "nmi")}
                   for m in ("vae", "kmeans")}
        details[used] = {"runs": rows, "summary": summary}
        for m in ("vae", "kmeans"):
            for key in ("acc_majority", "acc_hungarian", "nmi"):
                metrics[f"{used}_{m}_{key}"] = summary[m][key]["mean"]
        sv, sk = summary["vae"], summary["kmeans"]
        print(f"[{NAME}] {used} over {len(rows)} seed(s): ClusterVAE acc {sv['acc_majority']['mean']:.3f}"
              f"±{sv['acc_majority']['std']:.3f} (majority), {sv['acc_hungarian']['mean']:.3f}"
              f"±{sv['acc_hungarian']['std']:.3f} (Hungarian), NMI {sv['nmi']['mean']:.3f}±{sv['nmi']['std']:.3f}; "
              f"k-means {sk['acc_majority']['mean']:.3f} / {sk['acc_hungarian']['mean']:.3f} / "
              f"NMI {sk['nmi']['mean']:.3f}")
    metrics.update(details)
    save_results(out_dir, metrics)
    return metrics


def main(argv=None):
    """The command line: parse ``argv`` (default: sys.argv[1:]), run, and return the metrics."""
    ap = parser(DESCRIPTION)
    ap.add_argument("--datasets", default="mnist,fashion_mnist")
    ap.add_argument("--n-seeds", type=int, default=3)
    ap.add_argument("--n-train", type=int, default=None,
                    help="train on a random subsample of this many images (default: all of the training images)")
    ap.add_argument("--with-val", action="store_true",
                    help="train on the validation split too: all 60,000 training images, as the seed's script")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--arch", default="mlp", choices=["mlp", "conv"])
    ap.add_argument("--recon-weight", type=float, default=2.5)
    ap.add_argument("--means-lr", type=float, default=1e-2)
    ap.add_argument("--init", default="default", choices=["default", "glorot"],
                    help="weight init: the layers' own (PyTorch's) or Keras' Glorot-uniform, as the seed's script")
    a = ap.parse_args(argv)
    return run(a.device, a.quick, a.out, a.seed, datasets=tuple(a.datasets.split(",")), n_seeds=a.n_seeds,
               n_train=a.n_train, epochs=a.epochs, arch=a.arch, recon_weight=a.recon_weight, means_lr=a.means_lr,
               init=a.init, with_val=a.with_val)


if __name__ == "__main__":
    main()
