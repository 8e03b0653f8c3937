"""A DCGAN on MNIST with the DCGAN paper's architecture and training, sized for 28×28; saves a grid of digits.

The paper's recipe (Radford et al., 2016): strided convolutions in the discriminator and stride-2 transposed
convolutions in the generator, no pooling and no fully connected hidden layers, BatchNorm in both networks except
the generator's output and the discriminator's input, ReLU in the generator with tanh at the end, LeakyReLU(0.2)
in the discriminator, weights from N(0, 0.02²), Adam(lr 2·10⁻⁴, β₁ = 0.5) and batches of 128. For 28×28 (models/
gan.py, c = ``channels`` = 64): z (100) → linear → 2c×7×7 → 4×4 stride-2 transposed convolutions to c×14×14 and
1×28×28; the discriminator mirrors it (c×14×14, 2c×7×7, a linear score). Images are scaled to [−1, 1]; the loss is
the non-saturating one. Samples are scored with an EMA of the generator's weights and with the live weights.

How recognisable are the digits? A small MLP classifier (trained here on the MNIST training split, its test accuracy
printed) labels 1000 generated digits: we report how many it labels with confidence > 0.9, how the labels spread
over the 10 classes, and the FID in its hidden features (generated vs real test digits, and real vs other real
digits as the floor). The scores are taken after every epoch too (``log``), so a run shows its learning curve.
A full run keeps a checkpoint in its output folder after every epoch: the same command started again resumes
after the last finished epoch (with a larger ``--epochs``, it trains on). Without MNIST installed the 8×8 digits
are used instead, with a notice.
"""
import json
import time

import numpy as np

import minigrad as mg
from minigrad import backend, nn, optim
from minigrad.models.gan import DCGANDiscriminator, DCGANGenerator, dcgan_init_, train_step
from examples.common import (checkpoint_generators, load_or_digits, output_dir, parser, pyplot, resume_checkpoint,
                             save_checkpoint, save_figure, save_results)

NAME = "gan_dcgan"
DESCRIPTION = "DCGAN on MNIST (digits as fallback): a grid of generated digits, scored by a small classifier"
HEADLINE = "generated digits that a classifier recognises"
QUICK_SHOWS_HEADLINE = False


def headline(m):
    """(shown, numbers) for the demo table."""
    return (m["confident_share"] > 0.5 and m["classes_with_5pct"] >= 8,
            f"confidently classified samples {m['confident_share']:.3f}, classes with ≥5%: "
            f"{m['classes_with_5pct']}/10")


def train_classifier(X, y, Xte, yte, seed, epochs=2):
    """A 2-layer MLP on pixels (host-side judge of the samples); returns it and its test accuracy."""
    mg.manual_seed(seed)
    n_pix = int(np.prod(X.shape[1:]))
    clf = nn.Sequential(nn.Flatten(), nn.Linear(n_pix, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = optim.Adam(clf.parameters(), lr=1e-3)
    loader = mg.data.DataLoader((X, y), batch_size=128, shuffle=True, seed=seed)
    for _ in range(epochs):
        for xb, yb in loader:
            loss = mg.cross_entropy(clf(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with mg.no_grad():
        acc = float((clf(mg.tensor(Xte)).numpy().argmax(1) == yte).mean())
    return clf, acc


def judge(clf, images):
    with mg.no_grad():
        p = mg.softmax(clf(mg.tensor(images)), axis=1).numpy()
    labels = p.argmax(1)
    return {"confident_share": float((p.max(1) > 0.9).mean()),
            "class_counts": np.bincount(labels, minlength=10).tolist(),
            "classes_with_5pct": int((np.bincount(labels, minlength=10) >= 0.05 * len(labels)).sum())}


def judge_features(clf, images, batch_size=500):
    """The judge's last hidden layer (ReLU units) for each image: the feature space of the FID below."""
    body = clf[:-1]
    with mg.no_grad():
        return np.concatenate([body(mg.tensor(images[i:i + batch_size])).numpy().astype(np.float64)
                               for i in range(0, len(images), batch_size)])


def frechet_distance(fa, fb):
    """FID between two feature samples (N, d): ‖μa − μb‖² + tr(Σa + Σb − 2(Σa Σb)^½), host-side float64. The
    trace of the root is taken as Σ √λ of the symmetric Σa^½ Σb Σa^½ (same eigenvalues as Σa Σb), which stays real
    and finite when dead features make the covariances singular."""
    ma, mb = fa.mean(0), fb.mean(0)
    ca, cb = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    w, v = np.linalg.eigh(ca)
    ra = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    root_trace = np.sqrt(np.clip(np.linalg.eigvalsh(ra @ cb @ ra), 0, None)).sum()
    return float(((ma - mb) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * root_trace)


def save_grid(images, path, title):
    plt = pyplot()
    n, _, h, w = images.shape
    k = int(np.ceil(np.sqrt(n)))
    grid = np.ones((k * (h + 2), k * (w + 2)), dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, k)
        grid[r * (h + 2) + 1:r * (h + 2) + 1 + h, c * (w + 2) + 1:c * (w + 2) + 1 + w] = img[0]
    fig, ax = plt.subplots(figsize=(6, 6.4))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def score_samples(clf, samples, f_real):
    """The judge's verdict on generated digits: its confident share and class spread, and the FID to real digits
    whose judge features are ``f_real``."""
    out = judge(clf, samples)
    out["fid"] = frechet_distance(judge_features(clf, samples), f_real)
    return out


def run(device="cpu", quick=False, out_dir=None, seed=0, n_train=None, epochs=None, batch=128, channels=64,
        latent_dim=100, lr=2e-4, ema_decay=0.999):
    out_dir = output_dir(out_dir, NAME)
    Xall, yall, Xte, yte, dataset = load_or_digits("mnist")
    n_train = min(n_train or (256 if quick else len(Xall)), len(Xall))
    epochs = epochs or (1 if quick else 10)
    channels, batch = (8, 64) if quick else (channels, batch)
    idx = np.random.default_rng(seed).permutation(len(Xall))[:n_train]
    X = Xall[idx] * np.float32(2) - np.float32(1)  # [0, 1] -> [-1, 1], the range of tanh
    size = X.shape[-1]
    steps_per_epoch = n_train // batch
    print(f"[{NAME}] {dataset}: {n_train} training images of {size}×{size}, {epochs} epochs of batch {batch} "
          f"({epochs * steps_per_epoch} steps); channels {channels}, latent {latent_dim}, Adam lr {lr}, "
          f"EMA {ema_decay}", flush=True)
    start = time.perf_counter()
    clf, clf_acc = train_classifier(Xall[:2000] if quick else Xall, yall[:2000] if quick else yall, Xte[:2000],
                                    yte[:2000], seed, epochs=1 if quick else 2)
    print(f"[{NAME}] judge classifier: test accuracy {100 * clf_acc:.1f}% ({time.perf_counter() - start:.0f} s)",
          flush=True)
    n_eval = 1000
    real_a, real_b = Xte[:n_eval], Xte[n_eval:2 * n_eval]
    f_real = judge_features(clf, real_a)    # real vs other real digits: the floor a perfect generator would reach
    fid_real = frechet_distance(judge_features(clf, real_b), f_real) if len(real_b) == n_eval else None

    mg.manual_seed(seed)
    G = dcgan_init_(DCGANGenerator(latent_dim, channels, image_size=size)).to(device)
    D = dcgan_init_(DCGANDiscriminator(channels, image_size=size, batch_norm=True)).to(device)
    opt_g = optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    ema = optim.EMA(G, decay=ema_decay, warmup=True)
    loader = mg.data.DataLoader((X,), batch_size=batch, shuffle=True, drop_last=True, seed=seed, device=device)
    z_fixed = mg.randn(64, latent_dim, device=device)
    z_eval = mg.randn(n_eval, latent_dim, device=device)
    to_unit = lambda t: (t.numpy() + 1) / 2  # back to [0, 1]

    def samples(batch_stats=False):
        """(EMA-weight samples, live-weight samples, the EMA grid). BatchNorm normalises with its running statistics
        (eval mode), or with ``batch_stats`` with the samples' own, as in training mode; either way the running
        statistics are left as they were."""
        saved = [(b, backend.copy_array(b.data)) for _, b in G.named_buffers() if b is not None]
        G.train(batch_stats)
        with mg.no_grad():
            live = to_unit(G(z_eval))
            with ema.average_parameters():
                averaged, grid = to_unit(G(z_eval)), to_unit(G(z_fixed))
        G.train()
        for b, value in saved:
            with backend.device_scope(b.data):  # on the buffer's own device, as in the multi-GPU case
                b.data[...] = value
        return averaged, live, grid

    t0, log, train_seconds = time.perf_counter(), [], 0.0
    ckpt = None if quick else out_dir / "checkpoint.mg"   # written after every epoch: a stopped run resumes
    config = {"dataset": dataset, "n_train": n_train, "batch": batch, "channels": channels, "latent_dim": latent_dim,
              "lr": lr, "ema_decay": ema_decay, "seed": seed}
    settings = json.dumps(config, sort_keys=True)
    objects = {"G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d, "ema": ema}
    generators = checkpoint_generators(device, loader=loader.rng)
    start_epoch, extra = resume_checkpoint(ckpt, settings, device, objects, generators, NAME)
    if extra is not None:
        log, train_seconds = list(extra["log"]), float(extra["train_seconds"])
        print(f"[{NAME}] resumed from {ckpt} after epoch {start_epoch}", flush=True)
    for epoch in range(start_epoch, epochs):
        sums, n, t_epoch = {"loss_d": 0.0, "loss_g": 0.0}, 0, time.perf_counter()
        for (xb,) in loader:
            out = train_step(G, D, opt_g, opt_d, xb, "non_saturating", ema=ema)
            sums["loss_d"] += out["loss_d"]
            sums["loss_g"] += out["loss_g"]
            n += 1
        train_seconds += time.perf_counter() - t_epoch
        averaged, live, _ = samples()
        point = {"epoch": epoch + 1, **{k: v / max(n, 1) for k, v in sums.items()},
                 "train_seconds": round(train_seconds, 1)}
        ema_scores, live_scores = score_samples(clf, averaged, f_real), score_samples(clf, live, f_real)
        point.update(confident_share=ema_scores["confident_share"], fid=ema_scores["fid"],
                     confident_share_live_weights=live_scores["confident_share"], fid_live_weights=live_scores["fid"],
                     classes_with_5pct=ema_scores["classes_with_5pct"])
        ema_batch, live_batch = (score_samples(clf, s, f_real) for s in samples(batch_stats=True)[:2])
        point.update(confident_share_batch_stats=ema_batch["confident_share"], fid_batch_stats=ema_batch["fid"],
                     confident_share_live_weights_batch_stats=live_batch["confident_share"],
                     fid_live_weights_batch_stats=live_batch["fid"])
        log.append(point)
        print(f"  epoch {epoch + 1}/{epochs}: loss_d {point['loss_d']:.3f}, loss_g {point['loss_g']:.3f}; confident "
              f"{point['confident_share']:.3f} (live {point['confident_share_live_weights']:.3f}), FID "
              f"{point['fid']:.2f} (live {point['fid_live_weights']:.2f}); with batch statistics: confident "
              f"{point['confident_share_batch_stats']:.3f} (live "
              f"{point['confident_share_live_weights_batch_stats']:.3f}), FID {point['fid_batch_stats']:.2f} "
              f"({time.perf_counter() - t0:.0f} s)",
              flush=True)
        save_results(out_dir, {"progress": log, "epochs": epochs, "settings": config}, "progress.json")
        if ckpt is not None:
            save_checkpoint(ckpt, settings, epoch + 1, objects, generators, log=log, train_seconds=train_seconds)

    averaged, live, grid = samples()
    scores, live_scores = score_samples(clf, averaged, f_real), score_samples(clf, live, f_real)
    real_scores = judge(clf, real_a)
    figure = save_grid(grid, out_dir / "dcgan_samples.png",
                       f"DCGAN ({dataset}, {n_train} images, {epochs} epochs, EMA weights): "
                       f"{100 * scores['confident_share']:.0f}% confidently classified")
    metrics = {"dataset": dataset, "n_train": n_train, "epochs": epochs, "steps": epochs * steps_per_epoch,
               "batch": batch, "channels": channels, "latent_dim": latent_dim, "lr": lr, "ema_decay": ema_decay,
               "init": "N(0, 0.02²) weights, N(1, 0.02²) BatchNorm scales (the DCGAN paper)",
               "judge_test_accuracy": clf_acc, "confident_share": scores["confident_share"],
               "confident_share_live_weights": live_scores["confident_share"],
               "classes_with_5pct": scores["classes_with_5pct"], "class_counts": scores["class_counts"],
               "real_confident_share": real_scores["confident_share"], "fid": scores["fid"],
               "fid_live_weights": live_scores["fid"], "fid_real": fid_real,
               "fid_features": "the judge's hidden layer (256 ReLU units)", "train_seconds": round(train_seconds, 1),
               "log": log, "figure": figure, "seconds": round(time.perf_counter() - start, 1)}
    save_results(out_dir, metrics)
    print(f"[{NAME}] {100 * scores['confident_share']:.1f}% of {n_eval} generated digits (EMA weights; "
          f"{100 * live_scores['confident_share']:.1f}% with the live weights) classified with confidence > 0.9 "
          f"(real test digits: {100 * real_scores['confident_share']:.1f}%); classes with ≥5%: "
          f"{scores['classes_with_5pct']}/10 {scores['class_counts']}; FID in the judge's features "
          f"{scores['fid']:.2f} (real vs real: {fid_real if fid_real is None else round(fid_real, 2)}); grid: {figure} "
          f"({metrics['seconds']} s)", flush=True)
    return metrics


def main(argv=None):
    """The command line: parse ``argv`` (default: sys.argv[1:]), run, and return the metrics."""
    p = parser(DESCRIPTION)
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="default 10 (quick: 1)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--channels", type=int, default=64)
    a = p.parse_args(argv)
    return run(a.device, a.quick, a.out, a.seed, n_train=a.n_train, epochs=a.epochs, batch=a.batch, channels=a.channels)


if __name__ == "__main__":
    main()
