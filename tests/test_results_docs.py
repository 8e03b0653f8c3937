"""docs/results.md and the README's "Results at a glance" are exactly what docs/gen_results.py makes of the
committed runs under docs/runs/ (no number typed by hand), and the generator really reads the runs."""
import json
import math
import re

import pytest

from docs import gen_results


def test_docs_match_committed_runs():
    for path, text in gen_results.generate().items():
        assert path.read_text() == text, f"{path.name} disagrees with docs/runs/: run python -m docs.gen_results"


def _outside_generated_blocks(text):
    """The prose: without the generated blocks (results, the demo's table), code and version numbers."""
    text = re.sub(r"<!-- results:(\w+):begin -->.*?<!-- results:\1:end -->", "", text, flags=re.S)
    text = re.sub(r"<!-- demo-table:start -->.*?<!-- demo-table:end -->", "", text, flags=re.S)
    text = re.sub(r"```.*?```|`[^`]*`", "", text, flags=re.S)
    return re.sub(r"(Python|NumPy|torch) \d+(\.\d+)*(,? (or )?\d+\.\d+)*", "", text)


def test_no_measured_number_is_typed_by_hand_outside_the_generated_blocks():
    """A decimal, a percentage or a ± outside the markers would be a result nobody regenerates."""
    for path in (gen_results.RESULTS_MD, gen_results.README):
        prose = _outside_generated_blocks(path.read_text())
        typed = re.findall(r"\d+\.\d+|\d+ ?%|±", prose)
        assert not typed, f"{path.name}: numbers typed by hand outside the generated blocks: {typed[:10]}"


def test_the_hand_typed_number_check_can_fail():
    text = ("<!-- results:t:begin -->0.91 ± 0.02<!-- results:t:end -->\n`f(0.5)` on Python 3.10 or 3.11"
            " reaches 0.83.\n")
    assert re.findall(r"\d+\.\d+", _outside_generated_blocks(text)) == ["0.83"]


def test_no_page_of_the_docs_has_a_number_typed_by_hand():
    """Every measured number a reader sees comes from a generator; settings are written as math or code."""
    typed = {p.name: found for p in gen_results.doc_pages() if (
        found := gen_results.typed_numbers(gen_results.hand_written(p)))}
    assert not typed, "numbers typed by hand (python -m docs.gen_results --typed lists them): " + "; ".join(
        f"{name}: {[n for _, n in found[:6]]}" for name, found in typed.items())


def test_the_page_check_sees_prose_and_skips_generated_blocks_math_code_and_versions():
    text = ("Intro.\n<!-- results:x:begin -->\n0.91 ± 0.02\n<!-- results:x:end -->\n"
            "<!-- notes:start -->\nIt took 12 s.\n<!-- notes:end -->\n"
            "With $\\lambda = 2.5$ and `lr=1e-3` on NumPy 2.4 it reached 0.83, 97 % and 1.4× [a](../x/0.5.md).\n")
    assert gen_results.typed_numbers(text) == [(6, "12 s"), (8, "0.83"), (8, "97 %"), (8, "1.4×")]


def test_every_committed_run_is_complete():
    for run_id, res in gen_results.load_runs().items():
        meta = res.get("meta")
        assert meta, f"{run_id}: results.json has no meta (date, machine, wall time, command)"
        for key in ("date", "machine", "command", "wall_seconds"):
            assert key in meta, f"{run_id}: meta lacks {key}"
        assert not res.get("config", {}).get("quick"), f"{run_id}: a --quick run is not a result"


def _capsule_run(top2):
    rows = [{"seed": 0, "head": "capsule-kmeans", "initial_length": {"mean": 0.4}, "single_acc": 0.99,
             "train_seconds": 60.0, "top2": top2, "top2_both_gt_0.5": top2, "classes_gt_0.5_mean": 2.0}]
    ms = {"mean": top2, "std": 0.0}
    return {"config": {"n_train": 60000, "of": 60000, "epochs": 10, "trunk": "seed", "channels": [64, 128],
                       "n_seeds": 1, "w_scale": 1.0, "batch_size": 128, "lr": 1e-3},
            "summary": {"capsule-kmeans": {"top2": ms, "single_acc": ms, "top2_both_gt_0.5": ms,
                                           "trained_runs": "1/1"}},
            "capsule_best_head": "capsule-kmeans", "runs": rows,
            "meta": {"date": "2026-12-02 05:00 UTC", "machine": "test", "command": "python x", "wall_seconds": 7200}}


def test_a_changed_run_changes_the_docs():
    a = gen_results.generate({"capsule_two_digits": _capsule_run(0.9123)})
    b = gen_results.generate({"capsule_two_digits": _capsule_run(0.4567)})
    assert a != b
    for path in (gen_results.RESULTS_MD, gen_results.README):
        assert "0.912" in a[path] and "0.457" in b[path] and "0.912" not in b[path]


def test_the_capsule_page_reads_the_objective_traces_and_the_iteration_sweep():
    """§4's tables come from a run's traces: L of each routing rule after every pass, the shares of images whose L
    fell or rose at each pass, the centres' change; and from the top-2 of each head routed with other T."""
    def trace(L, rose):
        return {"mean_L": L, "frac_decreasing": [1.0, 1.0, 1.0 - rose], "frac_increasing": [0.0, 0.0, rose],
                "mean_max_abs_dv": [0.6, 0.1, 0.02]}
    l0 = -100 * math.log(10)                                     # 100 input capsules, v = 0
    run = _capsule_run(0.9123)
    run["config"]["iterations"] = 3
    objective = {"sabour": trace([l0, l0 - 1.0, l0 - 2.0, l0 - 1.5], 0.75),
                 "kmeans": trace([l0, l0 - 1.0, l0 - 2.0, l0 - 2.5], 0.0)}
    run["runs"][0].update({"objective": objective, "objective_single": objective,
                           "top2_by_test_iterations": {"1": 0.5, "3": 0.9123}})
    page = gen_results.generate({"capsule_two_digits": run})[gen_results.ROOT / "docs/derivations/capsule.md"]
    assert "| `\"sabour\"` | up to 75.0 %, from pass 3 | ≥ 25.0 % | 100.0 % | 25.0 % | 0.020 | 0.0100 |" in page
    assert "| `\"kmeans\"` | never | ≥ 100.0 % | 80.0 % | 0.0 % | 0.025 | 0.0000 |" in page
    assert "| T = 1 | T = 3 (trained) |" in page and "| 0.500 | 0.912 |" in page


def test_missing_markers_are_reported(tmp_path):
    with pytest.raises(ValueError, match="markers"):
        gen_results.render("no markers here", "table", "x")


def test_a_stopped_run_is_read_from_its_progress_file_and_says_so(tmp_path):
    """A run stopped before its end has only the progress.json its example writes after each epoch: its last
    epoch is reported, marked as stopped, with the curve, on every page that lists it."""
    curve = [{"epoch": e, "loss": 1.0, "seconds": 60, "acc_majority": a, "acc_hungarian": a - 0.01, "nmi": 0.5}
             for e, a in ((1, 0.5123), (2, 0.7341))]
    progress = {"config": {"arch": "conv", "epochs": 50}, "in_progress": {"dataset": "mnist", "seed": 0,
                                                                          "curve": curve},
                "meta": {"date": "2026-12-02 09:00 UTC", "machine": "test", "command": "python x",
                         "wall_seconds": 600}}
    (tmp_path / "vae_cluster-conv").mkdir()
    (tmp_path / "vae_cluster-conv" / "progress.json").write_text(json.dumps(progress))
    runs = gen_results.load_runs(tmp_path)
    assert runs["vae_cluster-conv"]["stopped"] is True
    pages = gen_results.generate(runs)
    for path in (gen_results.RESULTS_MD, gen_results.README, gen_results.ROOT / "docs/derivations/vae.md"):
        assert "0.734" in pages[path] and "progress.json" in pages[path], path.name
    assert "stopped after 2 of 50 epochs" in pages[gen_results.RESULTS_MD]
    assert "1: 0.512, 2: 0.734" in pages[gen_results.RESULTS_MD]


def test_a_stopped_dcgan_run_reports_its_last_epoch_and_settings(tmp_path):
    log = [{"epoch": e, "confident_share": c, "fid": f} for e, c, f in ((1, 0.2871, 19.5), (2, 0.4432, 14.25))]
    progress = {"progress": log, "epochs": 10, "settings": {"channels": 128, "latent_dim": 100, "batch": 128},
                "meta": {"date": "2026-12-02 12:00 UTC", "machine": "test", "command": "python x",
                         "wall_seconds": 600}}
    (tmp_path / "gan_dcgan-wide").mkdir()
    (tmp_path / "gan_dcgan-wide" / "progress.json").write_text(json.dumps(progress))
    pages = gen_results.generate(gen_results.load_runs(tmp_path))
    gan = pages[gen_results.ROOT / "docs/derivations/gan.md"]
    assert "c = 128" in gan and "stopped after 2 of 10 epochs" in gan and "1: 28.7 % / 19.5, 2: 44.3 % / 14.2" in gan
    assert "44.3 %" in pages[gen_results.README] and "(stopped)" in pages[gen_results.README]


def test_learning_curves_are_drawn_from_the_runs(tmp_path):
    pytest.importorskip("matplotlib")
    from docs import gen_figures
    runs, out = tmp_path / "runs", tmp_path / "img"
    (runs / "gan_dcgan").mkdir(parents=True)
    out.mkdir()
    log = [{"epoch": e, "confident_share": c, "fid": 10.0} for e, c in ((1, 0.2), (2, 0.4))]
    (runs / "gan_dcgan" / "results.json").write_text(json.dumps({"log": log, "meta": {}}))
    written = gen_figures.learning_curves(runs, out)
    assert [p.name for p in written] == ["curves-dcgan.svg"]
    assert "<svg" in written[0].read_text()


def _vae_run(seed, acc, init="glorot"):
    curve = [{"epoch": 1, "loss": 1.0, "seconds": 60, "acc_majority": acc, "acc_hungarian": acc, "nmi": 0.7}]
    row = {"seed": seed, "train_seconds": 60.0, "vae": {"acc_majority": acc, "acc_hungarian": acc - 0.05, "nmi": 0.7},
           "kmeans": {"acc_majority": 0.59, "acc_hungarian": 0.52, "nmi": 0.5}, "curve": curve}
    one = {"mean": acc, "std": 0.0}
    return {"config": {"arch": "conv", "epochs": 50, "n_seeds": 1, "init": init, "lr": 1e-3, "quick": False},
            "mnist": {"runs": [row], "summary": {"vae": {"acc_majority": one, "acc_hungarian": one, "nmi": one},
                                                 "kmeans": {"acc_majority": one, "acc_hungarian": one, "nmi": one}}},
            "meta": {"date": f"2026-12-02 1{seed}:00 UTC", "machine": "test", "command": "python x",
                     "wall_seconds": 7200}}


def test_seeds_run_as_separate_processes_are_pooled_into_one_mean_and_std():
    """Three runs of one protocol that differ only in the seed give one mean ± sample std (and the best seed) on
    every page; a run with other settings (here the init) is not pooled with them."""
    runs = {"vae_cluster-conv-mnist": _vae_run(0, 0.80), "vae_cluster-conv-mnist-seed1": _vae_run(1, 0.76),
            "vae_cluster-conv-mnist-seed2": _vae_run(2, 0.78), "vae_cluster-other": _vae_run(3, 0.5, init="default")}
    pooled = gen_results.pooled_vae(runs)
    assert len(pooled) == 1 and pooled[0]["seeds"] == [0, 1, 2] and pooled[0]["best"] == 0.80
    assert "vae_cluster-other" not in pooled[0]["run_ids"]
    pages = gen_results.generate(runs)
    for path in (gen_results.RESULTS_MD, gen_results.README, gen_results.ROOT / "docs/derivations/vae.md"):
        assert "0.780 ± 0.020" in pages[path], path.name
    assert pages[gen_results.README].count("(docs/runs/vae_cluster-conv-mnist-seed1/") == 1  # pooled, not listed


def test_a_resumed_run_states_the_time_of_all_its_processes():
    meta = {"date": "d", "machine": "m", "wall_seconds": 600.0}
    curve = {"in_progress": {"curve": [{"epoch": e, "seconds": 3600.0} for e in (1, 2)]}}
    assert "10 min wall time since it was last resumed, its epochs 2.0 h in all" in gen_results._when(
        {**curve, "meta": meta})
    told = {**meta, "wall_seconds": 7800.0, "earlier_processes_seconds": 7200.0}
    assert "2.2 h wall time (resumed: 2.0 h of it in earlier processes)" in gen_results._when({**curve, "meta": told})


def test_attention_order_and_ring_runs_become_rows_with_their_numbers():
    meta = {"date": "d", "machine": "m", "command": "c", "wall_seconds": 60.0}
    order = {"config": {"task": "reverse", "length": 16, "steps": 1500, "layers": 2, "d_model": 64, "n_test": 5000},
             "runs": {"none": {"sequence_accuracy": 0.0, "token_accuracy": 0.2413},
                      "sinusoidal": {"sequence_accuracy": 0.9987, "token_accuracy": 0.9999}}, "meta": meta}
    ring = {"seeds": 3, "steps": 3000, "batch": 256, "meta": meta,
            "table": {"baseline": {"modes_mean": 2.0, "modes_std": 0.8165, "hq_mean": 0.467},
                      "r1": {"modes_mean": 7.6667, "modes_std": 0.4714, "hq_mean": 0.786}}}
    docs = gen_results.generate({"attention_order": order, "gan_ring": ring})
    table = docs[gen_results.RESULTS_MD]
    assert "none 0.000 / 0.241, sinusoidal 0.999 / 1.000" in table
    assert "baseline 2.00 ± 0.82 / 46.7 %, r1 7.67 ± 0.47 / 78.6 %" in table
    assert "`attention_order`" not in table.split("Not re-run since the first version")[1].split("<!--")[0]


def test_crf_margin_and_sentiment_runs_become_rows_with_their_numbers():
    meta = {"date": "d", "machine": "m", "command": "c", "wall_seconds": 60.0}
    crf = {"task": "ner", "unit": "entity", "train_sentences": 17536, "test_sentences": 1948, "epochs": 3,
           "encoder": "conv", "meta": meta,
           "models": {"softmax": {"f1": 0.80461, "illegal_transition_share": 0.00301},
                      "crf": {"f1": 0.88983, "illegal_transition_share": 0.00005}}}
    images = {"dataset": "mnist", "seen_classes": list(range(7)), "config": {"epochs": 5}, "meta": meta,
              "losses": {"am": {"top1": 0.9391, "mAP": 0.7012}}, "pixel_baseline": {"top1": 0.979, "mAP": 0.51}}
    sentences = {"test_groups": 24, "test_sentences": 1300, "config": {"epochs": 8}, "meta": meta,
                 "losses": {"softmax": {"sentence": {"top1": 0.612}}, "am": {"sentence": {"top1": 0.655}}}}
    sentiment = {"n_train": 28000, "n_test": 3512, "test_accuracy": 0.8157, "naive_bayes_test_accuracy": 0.77,
                 "best_epoch": 5, "config": {"epochs": 6, "layers": 2, "d_model": 64}, "meta": meta}
    table = gen_results.generate({"crf_segmentation-ner": crf, "margin_images": images,
                                  "margin_sentences": sentences, "attention_sentiment": sentiment})
    table = table[gen_results.RESULTS_MD]
    assert "softmax 0.8046 (0.301 %), crf 0.8898 (0.005 %)" in table
    assert "am 0.939 / 0.701 (raw pixels 0.979 / 0.510)" in table and "softmax 0.612, am 0.655" in table
    assert "0.8157 (naive Bayes 0.7700; best validation epoch 5)" in table


def test_the_crf_and_gan_pages_show_every_model_setting_and_variant_of_their_runs():
    """The CRF page's table per model and decoder, the Dirac-GAN table per setting and method and the ring's per
    variant and seed come from the runs, with the gaps and ratios their readings are about."""
    meta = {"date": "d", "machine": "m", "command": "c", "wall_seconds": 60.0}
    model = lambda f1, illegal: {"precision": 0.9, "recall": 0.8, "f1": f1, "illegal_transition_share": illegal,
                                 "train_seconds": 83.5}
    crf = {"task": "seg", "unit": "word", "train_sentences": 100, "test_sentences": 10, "epochs": 3, "seed": 0,
           "encoder": "none", "meta": meta,
           "models": {"softmax": model(0.5862, 0.3089), "softmax + grammar": model(0.8139, 0.0),
                      "crf": model(0.8325, 0.00001), "crf + grammar": model(0.8325, 0.0)}}
    dist = lambda ode, **ema: {"ode": ode, "ode_tail_min": ode, "ode_tail_max": ode, "simultaneous": 204.74,
                               "alternating": 1.3993, **ema}
    dirac = {"T": 100.0, "lr": 0.1, "steps": 1000, "ema_tau": 10.0, "start": [1.0, 1.0], "meta": meta,
             "settings": {"wgan": dist(1.41421), "r1": dist(6.3e-13),
                          "wgan_ema": dist(1.41421, ode_ema=0.14069, alternating_ema=0.13527)}}
    ring = {"seeds": 2, "steps": 3000, "batch": 256, "r1_gamma": 0.1, "num_scores": 4, "meta": meta,
            "table": {"r1": {"modes_mean": 8.0, "modes_std": 0.0, "hq_mean": 0.814, "hq_std": 0.0779,
                             "runs": [{"modes": 8, "hq_share": 0.8628, "seconds": 26.1},
                                      {"modes": 8, "hq_share": 0.704, "seconds": 27.3}]}}}
    pages = gen_results.generate({"crf_segmentation-seg-no-context": crf, "gan_dirac": dirac, "gan_ring": ring})
    crf_page, gan = (pages[gen_results.ROOT / "docs/derivations" / name] for name in ("crf.md", "gan.md"))
    assert "| softmax, per-character argmax | 0.9000 | 0.8000 | 0.5862 | 30.9 % | 84 s |" in crf_page
    assert "| CRF, Viterbi under the BMES grammar | 0.9000 | 0.8000 | 0.8325 | 0 % | (same model) |" in crf_page
    assert "CRF minus softmax: +24.63 word-F1 points; CRF minus softmax under the grammar: +1.86." in crf_page
    assert "| R1, $\\gamma = 1$ | $6\\cdot10^{-13}$ |" in gan
    assert "| WGAN | 1.414 | 1.414 – 1.414 | 204.7 | 1.399 |" in gan
    assert "WGAN + EMA 10.1× (ODE), 10.3× (alternating)" in gan
    assert "| R1 | 8.00 ± 0.00 | 81.4 ± 7.8 % | 8, 8; 86.3, 70.4 | 27 s |" in gan


def _sentences_run(seed, softmax, am, command=None):
    meta = {"date": f"d{seed}", "machine": "m", "command": command or f"python -m examples run margin_sentences "
                                                                      f"--seed {seed}", "wall_seconds": 120.0}
    losses = {name: {"sentence": {"top1": top1, "top5": 0.99, "top10": 1.0}, "group": {"top1": 0.9, "top5": 1.0,
                                                                                       "top10": 1.0},
                     "loss_curve": [5.0, curve]} for name, top1, curve in (("softmax", softmax, 0.02), ("am", am, 0.4))}
    return {"data": "SYNTHETIC", "train_groups": 866, "test_groups": 217, "test_sentences": 1300,
            "config": {"epochs": 20}, "losses": losses, "meta": meta}


def test_margin_runs_that_differ_only_in_the_seed_are_pooled():
    runs = {"margin_sentences": _sentences_run(0, 0.90, 0.94, command="python -m examples run margin_sentences"),
            "margin_sentences-seed1": {**_sentences_run(1, 0.92, 0.95), "seed": 1}}
    docs = gen_results.generate(runs)
    page = docs[gen_results.ROOT / "docs" / "derivations" / "margin.md"]
    assert "Seed 0: 866 training groups" in page and "Seed 1: 866 training groups" in page
    assert "| AM-Softmax | 0.940 | 0.990 | 1.000 | 0.900 | 1.000 | 1.000 | 0.40 |" in page
    assert "Pooled: mean ± standard deviation over seeds 0, 1" in page
    assert "| AM-Softmax | 0.945 ± 0.007 | 0.990 ± 0.000 |" in page
    assert "seed by seed (0 / 1): AM-Softmax +4.0 / +3.0." in page
    assert gen_results.REFERENCE["margin_sentences"] in page
    table, readme = docs[gen_results.RESULTS_MD], docs[gen_results.README]
    assert "**2 seeds** (0, 1) pooled | softmax 0.910 ± 0.014, am 0.945 ± 0.007" in table
    assert readme.count("margin_sentences-seed1/results.json") == 1, "the pooled line replaces the runs' own"
    # another protocol (other settings) is not pooled with them
    other = {**_sentences_run(2, 0.5, 0.6), "config": {"epochs": 5}}
    assert len(gen_results.pooled_margin_sentences({**runs, "margin_sentences-short": other})) == 1


def test_the_attention_page_shows_how_soon_each_encoding_learned_and_the_validation_curve():
    meta = {"date": "d", "machine": "m", "command": "c", "wall_seconds": 60.0}
    curve = [{"step": 100, "seq_acc": 0.2}, {"step": 200, "seq_acc": 0.995}]
    order = {"config": {"task": "reverse", "length": 16, "steps": 200, "layers": 2, "d_model": 64, "n_test": 5000,
                        "eval_every": 100},
             "runs": {"none": {"sequence_accuracy": 0.0, "token_accuracy": 0.24, "curve": curve[:1]},
                      "sinusoidal": {"sequence_accuracy": 1.0, "token_accuracy": 1.0, "curve": curve}}, "meta": meta}
    sentiment = {"n_train": 100, "n_test": 20, "test_accuracy": 0.8, "naive_bayes_test_accuracy": 0.7, "best_epoch": 2,
                 "config": {"epochs": 2, "layers": 2, "d_model": 64}, "meta": meta,
                 "history": [{"epoch": 1, "val_acc": 0.75}, {"epoch": 2, "val_acc": 0.8125}]}
    docs = gen_results.generate({"attention_order": order, "attention_sentiment": sentiment})
    page = docs[gen_results.ROOT / "docs" / "derivations" / "attention.md"]
    assert "sequence accuracy ≥ 0.99 | none never, sinusoidal step 200 |" in page
    assert "| validation accuracy by epoch (the best epoch is tested) | 1: 0.7500, 2: 0.8125 |" in page
    assert "step 200" not in docs[gen_results.RESULTS_MD], "the page's detail rows stay on the page"


def test_the_capsule_initialisation_diagnostic_computes_the_squash_slope_and_the_old_bound():
    from docs import gen_capsule_init as g
    q = lambda s: s * s / (g.C + s * s)   # squashed length at ‖s‖ = s
    for s in (0.1, 0.5, 2.0, 5.0):
        fd = (q(s + 1e-6) - q(s - 1e-6)) / 2e-6
        assert abs(g.slope(q(s)) - fd) < 1e-6 * max(1.0, fd)
    assert abs(g.first_version_scale(64) - (2.8 ** 0.5)) < 1e-12


def test_a_stopped_capsule_run_reports_its_learning_curve_and_says_it_stopped():
    cfg = {"n_train": 60000, "of": 60000, "epochs": 10, "trunk": "seed", "channels": [64, 128], "n_seeds": 1,
           "w_scale": 1.0, "batch_size": 128, "lr": 0.001}
    curve = [{"epoch": 1, "single_acc": 0.9705, "top2": 0.689, "saturated_classes": 0},
             {"epoch": 2, "single_acc": 0.982, "top2": 0.584, "saturated_classes": 1}]
    run = {"config": cfg, "finished": [], "stopped": True, "meta": {"date": "d", "machine": "m", "command": "c"},
           "in_progress": {"seed": 0, "head": "capsule-sabour", "initial_length": {"mean": 0.116}, "curve": curve}}
    docs = gen_results.generate({"capsule_two_digits-full-sabour": run})
    table = docs[gen_results.RESULTS_MD]
    assert "`sabour` head, seed 0 (60,000 of 60,000 digits, 10 epochs" in table
    assert "**stopped after 2 of 10 epochs**" in table and "1: 0.9705 / 0.689, 2: 0.9820 / 0.584" in table
    assert "| 0.116; 0, 1 |" in table
    assert "single-digit accuracy 0.9820, top-2 0.584 on the first test images, 1 saturated classes" in docs[
        gen_results.README]
