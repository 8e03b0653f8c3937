"""CuPy API conformance without a GPU.

Every ``xp.<name>`` / ``cp.<name>`` / ``cupyx.<name>`` (and ``<tensor>.xp.<name>``) that minigrad, the models and
the benchmarks use must exist in CuPy and accept the arguments passed at each call site, and the generator
methods called on ``backend.generator(...)`` must exist on ``cupy.random.Generator``: on the CPU these names
resolve to NumPy, so a NumPy-only name or keyword would only fail on a GPU. And ``import minigrad`` with CuPy
installed but no GPU must work and report no device.

CuPy imports without a GPU; CI installs the ``gpu`` extra's wheel for this test (.ci/cupy-conformance). Without
CuPy (it is useful only on CUDA hardware) the test skips.
"""
import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

cupy = pytest.importorskip("cupy", reason="CuPy (the 'gpu' extra, for CUDA machines) is not installed; "
                                          ".ci/cupy-conformance installs it and runs this test")
import cupyx  # noqa: E402
import cupyx.scipy.special  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ["minigrad", "models", "benchmarks"]
MODULE_NAMES = {"xp": "cupy", "cp": "cupy", "cupyx": "cupyx", "_cp_special": "cupyx.scipy.special"}
GENERATOR_METHODS = {"standard_normal", "random", "integers", "uniform", "normal", "permutation", "choice"}
UFUNC_KEYWORDS = {"out", "dtype", "casting"}


def _files():
    for top in SCANNED:
        for p in sorted((ROOT / top).rglob("*.py")):
            if "testing" not in p.parts:  # the simulated device mirrors NumPy on purpose
                yield p


def _chain(node):
    """(root name, [attr, ...]) of an attribute chain rooted at an array module, else None."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        if node.attr in ("xp", "cp") and attrs[:-1]:  # <expr>.xp.<name>, backend.cp.<name>
            return MODULE_NAMES[node.attr], attrs[-2::-1]
        node = node.value
    if isinstance(node, ast.Name) and node.id in MODULE_NAMES and attrs:
        return MODULE_NAMES[node.id], attrs[::-1]
    return None


def _uses():
    """{(module, dotted name): [(file:line, call node or None), ...]} over the scanned code."""
    uses = {}
    for path in _files():
        tree = ast.parse(path.read_text(), filename=str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or isinstance(parents.get(node), ast.Attribute):
                continue  # only the longest chain: xp.linalg.norm, not also xp.linalg
            found = _chain(node)
            if found is None:
                continue
            parent = parents.get(node)
            call = parent if isinstance(parent, ast.Call) and parent.func is node else None
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            uses.setdefault((found[0], ".".join(found[1])), []).append((where, call))
    return uses


def _generator_calls():
    """[(method, file:line, call)] for methods called on backend.generator(...) or a variable bound to it."""
    out = []
    for path in _files():
        tree = ast.parse(path.read_text(), filename=str(path))
        bound = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                    ast.unparse(node.value.func).endswith(("generator", "xp.random.default_rng")):
                bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                recv = node.func.value
                on_gen = (isinstance(recv, ast.Call) and ast.unparse(recv.func).endswith("generator")) or \
                         (isinstance(recv, ast.Name) and recv.id in bound)
                if on_gen and node.func.attr in GENERATOR_METHODS:
                    out.append((node.func.attr, f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return out


def _resolve(module, dotted):
    obj = sys.modules[module]
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _mismatch(obj, call, drop_self=False):
    """Why ``call``'s arguments do not fit ``obj`` (None when they fit or cannot be told)."""
    npos = None if any(isinstance(a, ast.Starred) for a in call.args) else len(call.args)
    kws = {k.arg for k in call.keywords if k.arg is not None}
    if isinstance(obj, cupy.ufunc):
        if npos is not None and npos > obj.nin + obj.nout:
            return f"{npos} positional arguments for a ufunc of {obj.nin} inputs"
        bad = kws - UFUNC_KEYWORDS
        return f"keywords {sorted(bad)} not taken by CuPy ufuncs" if bad else None
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())[1:] if drop_self else list(sig.parameters.values())
    sig = sig.replace(parameters=params)
    try:
        sig.bind_partial(*([None] * (npos or 0)), **{k: None for k in kws})
    except TypeError as e:
        return f"{e} (CuPy's signature: {sig})"
    return None


def test_the_scan_finds_the_array_module_calls():
    uses = _uses()
    names = {n for _, n in uses}
    # The scan must see what we know is there, or an empty scan would pass.
    assert {"exp", "einsum", "lib.stride_tricks.as_strided", "random.default_rng", "scatter_add"} <= names
    assert len(uses) >= 50 and len(_generator_calls()) >= 5


def test_every_array_module_name_exists_in_cupy():
    missing = []
    for (module, dotted), sites in sorted(_uses().items()):
        try:
            _resolve(module, dotted)
        except AttributeError:
            missing.append(f"{module}.{dotted} (used at {', '.join(w for w, _ in sites)})")
    assert not missing, "names CuPy does not have:\n" + "\n".join(missing)


def test_every_call_fits_cupys_signature():
    bad, checked = [], 0
    for (module, dotted), sites in sorted(_uses().items()):
        try:
            obj = _resolve(module, dotted)
        except AttributeError:
            continue  # reported by test_every_array_module_name_exists_in_cupy
        for where, call in sites:
            if call is None or not callable(obj):
                continue
            checked += 1
            why = _mismatch(obj, call)
            if why:
                bad.append(f"{where}: {module}.{dotted}: {why}")
    assert checked >= 50
    assert not bad, "calls CuPy would reject:\n" + "\n".join(bad)


def test_generator_methods_exist_in_cupy():
    bad = []
    for name, where, call in _generator_calls():
        method = getattr(cupy.random.Generator, name, None)
        if method is None:
            bad.append(f"{where}: cupy.random.Generator has no {name}")
        elif (why := _mismatch(method, call, drop_self=True)):
            bad.append(f"{where}: Generator.{name}: {why}")
    assert not bad, "\n".join(bad)


def test_import_without_a_gpu_reports_no_device():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT))
    code = ("import minigrad as mg\n"
            "assert mg.backend.cp is not None, 'CuPy did not import through the backend'\n"
            "print(mg.cuda.is_available(), mg.cuda.device_count())\n"
            "try:\n    mg.zeros(1, device='cuda')\nexcept RuntimeError as e:\n    print('refused:', e)\n"
            "print(mg.zeros(2).device, float((mg.ones(3) * 2).sum()))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "False 0"
    assert lines[1].startswith("refused:") and "0 CUDA device" in lines[1]
    assert lines[2] == "cpu 6.0"
