"""Every example runs in --quick mode through the launcher and writes its results.json (CI smoke test)."""
import json

import pytest

from examples import discover
from examples.__main__ import main

EXAMPLES = sorted(discover())


def test_launcher_lists_every_example(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for name in EXAMPLES:
        assert name in listed


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_quick(name, tmp_path, monkeypatch, device):
    pytest.importorskip("matplotlib", reason="examples need the 'examples' extra")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert main(["run", name, "--quick", "--out", str(tmp_path), "--device", device]) == 0
    results = json.loads((tmp_path / name / "results.json").read_text())
    assert results, f"{name} returned no metrics"
