"""The attention benchmark's reading is computed from its own tables: targets, Amdahl bound, memory."""
from benchmarks import bench_attention as bench

MIB = 2 ** 20


def _section(title, ms, peaks, saved):
    """A section as the script writes it: ``ms`` and ``peaks``/``saved`` (MiB) per variant."""
    rows = {name: ((t / 1e3, t / 1e3, t / 1e3), (p * MIB, s * MIB))
            for name, t, p, s in zip(("minigrad fused", "minigrad recompute", "minigrad composed", "PyTorch"),
                                     ms, peaks, saved)}
    return f"### {title}\n\n" + bench.table(rows, "PyTorch")


def _body():
    return "\n".join([_section("Encoder layer, dropout 0.0 (training mode)", (190, 195, 200, 250),
                               (130, 114, 130, 140), (88, 72, 88, 52)),
                      _section("Encoder layer, dropout 0.1 (training mode)", (210, 215, 220, 260),
                               (136, 120, 170, 330), (112, 96, 144, 158)),
                      _section("Attention core only: q, k, v of shape (32, 8, 128, 32)", (30, 35, 40, 30),
                               (48, 48, 72, 68), (20, 4, 20, 26))])


def test_the_tables_parse_back():
    t = bench.parse_tables(_body())
    assert t[bench.CORE]["minigrad composed"]["ms"] == 40.0
    assert t[bench.LAYER1]["PyTorch"]["peak"] == 330.0


def test_reading_judges_the_targets_and_bounds_the_layer():
    text = bench.reading(_body())
    assert "attention core: met (1.33×, 30.0 vs 40.0 ms)" in text
    assert "Whole layer: **missed** (1.05× at dropout 0.0, 1.05× at dropout 0.1)" in text
    assert "Layer, dropout 0.0: **equal** (130.0 vs 130.0 MiB)" in text
    assert "| fused ≤ 1.5× PyTorch | met: 0.76× PyTorch's time at dropout 0.0" in text
    # Amdahl: the composed layer (200 ms) less its composed core (40 ms) leaves 160 ms: at most 1.25×.
    assert "no attention, however fast, speeds this layer up by more than 200.0 / 160.0 = 1.25×" in text
    assert "holds 16.0 MiB less after the layer's forward, for 5.0 ms more in the core" in text


def test_flop_counts_follow_the_shapes():
    linear, attention = bench.flops()
    B, T, D, FF = bench.B, bench.T, bench.D, bench.FF
    assert abs(linear - 3 * 2 * B * T * (4 * D * D + 2 * D * FF) / 1e9) < 1e-9
    assert abs(attention - 3 * 4 * B * T * T * D / 1e9) < 1e-9
    assert 2 * D + FF == 1536  # where the two are equal, as docs/benchmarks/attention.md says


def test_the_page_reading_is_current(tmp_path):
    """The reading on docs/benchmarks/attention.md is what the script computes from the tables above it."""
    page = bench.page("attention", "cpu")
    copy = tmp_path / "attention.md"
    copy.write_text(page.read_text())
    bench.reread(copy)
    assert copy.read_text() == page.read_text(), "run python -m benchmarks.bench_attention --reading"
