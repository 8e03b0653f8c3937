"""Runnable examples. ``python -m examples list`` shows them; ``python -m examples run NAME`` runs one."""
import importlib
import pkgutil
import sys
from pathlib import Path

DEMO = "cnn_digits"

# The examples import their shared helpers as the top-level module ``_common`` (examples/_common.py).
# ``python examples/NAME.py`` finds it because Python puts the script's folder, this one, first on sys.path;
# ``python -m examples ...`` and ``python -m examples.NAME`` import this package first, which adds the folder too.
HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.append(HERE)


def discover():
    """Example modules by NAME: every module in this folder that defines ``NAME`` and ``run``."""
    found = {}
    for info in pkgutil.iter_modules([HERE]):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"examples.{info.name}")
        if hasattr(module, "run") and hasattr(module, "NAME"):
            found[module.NAME] = module
    return dict(sorted(found.items()))
