"""Runnable examples. ``python -m examples list`` shows them; ``python -m examples run NAME`` runs one."""
import importlib
import pkgutil
from pathlib import Path

DEMO = "cnn_digits"

HERE = str(Path(__file__).parent)


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
