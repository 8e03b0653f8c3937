"""Reliability run: misuse cases, threads, hostile and damaged checkpoints, saves killed mid-write.

``python -m scripts.reliability`` runs everything and prints a report; ``--write-docs`` also puts it into
docs/testing.md (between the reliability markers); ``--quick`` samples the fuzz and kill runs (the test suite
runs that). Every figure of the report is counted here, on this machine, by this run.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np

import minigrad as mg
import minigrad.functional as F
from minigrad import nn
from minigrad.io import CheckpointError

ROOT = Path(__file__).resolve().parents[1]

DOC = ROOT / "docs" / "testing.md"
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"


# ---- misuse cases: each one either gives PyTorch's result or a clear error -----------------------------------
def _error(exc, text):
    return ("error", exc, text)


def _value(check):
    return ("value", check)


def _saved_then_stepped():
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    w.grad = mg.ones_like(w)
    loss = (w * w).sum()
    mg.optim.SGD([w], lr=0.1).step()
    loss.backward()


def _aliasing():
    a, b, g = mg.tensor([1.0], requires_grad=True), mg.tensor([2.0], requires_grad=True), mg.tensor([1.0])
    (a + b).backward(g)
    a.grad.data *= 0.5
    return a.grad is not b.grad and b.grad.item() == 1.0 and g.item() == 1.0


def _opt_state(key, opt):
    w = mg.randn(3, 2, requires_grad=True)
    o = opt([w], lr=0.1, **({"momentum": 0.9} if opt is mg.optim.SGD else {}))
    w.grad = mg.ones_like(w)
    o.step()
    sd = o.state_dict()
    sd["state"][0][key] = np.zeros((2, 3), np.float32)
    o.load_state_dict(sd)


def _nan(t):
    return bool(np.isnan(t.numpy()).all())


def misuse_cases():
    x = mg.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
    img, k = mg.randn(1, 1, 5, 5), mg.randn(1, 1, 2, 2)
    empty = mg.tensor(np.zeros(0, np.int64))
    inf, nan = float("inf"), float("nan")
    cases = [
        ("optimizer step between forward and backward", _saved_then_stepped,
         _error(RuntimeError, "modified by an inplace operation")),
        ("(a + b).backward(G): grads alias each other or G", _aliasing, _value(bool)),
        ("sum(x, axis=2) on 2-D x", lambda: mg.sum(x, axis=2), _error(IndexError, "sum: axis=2")),
        ("softmax(x, axis=3) on 2-D x", lambda: mg.softmax(x, axis=3), _error(IndexError, "softmax: axis=3")),
        ("cat([x, x], axis=2) on 2-D x", lambda: mg.cat([x, x], axis=2), _error(IndexError, "concatenate: axis=2")),
        ("max(x, axis=-3)", lambda: mg.max(x, axis=-3), _error(IndexError, "max: axis=-3")),
        ("argmax(x, axis=5)", lambda: mg.argmax(x, axis=5), _error(IndexError, "argmax: axis=5")),
        ("squeeze(x, axis=4)", lambda: mg.squeeze(x, axis=4), _error(IndexError, "squeeze: axis=4")),
        ("split(x, 1, axis=2)", lambda: mg.split(x, 1, axis=2), _error(IndexError, "split: axis=2")),
        ("transpose(x, (2, 0))", lambda: mg.transpose(x, (2, 0)), _error(IndexError, "transpose: axes=2")),
        ("nn.Softmax(dim=2)", lambda: nn.Softmax(dim=2)(x), _error(IndexError, "softmax: axis=2")),
        ("conv2d dilation=0", lambda: F.conv2d(img, k, dilation=0), _error(ValueError, "conv2d: dilation")),
        ("conv2d stride=0", lambda: F.conv2d(img, k, stride=0), _error(ValueError, "conv2d: stride")),
        ("conv2d stride=-1", lambda: F.conv2d(img, k, stride=-1), _error(ValueError, "conv2d: stride")),
        ("conv1d stride=0", lambda: F.conv1d(mg.randn(1, 1, 5), mg.randn(1, 1, 2), stride=0),
         _error(ValueError, "conv1d: stride")),
        ("cross_entropy, every target ignored", lambda: mg.cross_entropy(mg.randn(2, 3), mg.tensor([-100, -100])),
         _value(_nan)),
        ("cross_entropy, (0, C) batch", lambda: mg.cross_entropy(mg.zeros(0, 3), empty), _value(_nan)),
        ("crf_nll, B = 0", lambda: _crf_empty(), _value(lambda t: t.shape == (0,))),
        ("batched matmul, batch 2 vs 3", lambda: mg.randn(2, 3, 4) @ mg.randn(3, 4, 5),
         _error(ValueError, "matmul: batch shapes")),
        ('mg.tensor(["a", "b"])', lambda: mg.tensor(["a", "b"]), _error(TypeError, "tensor: data must be numbers")),
        ("Adam.load_state_dict, exp_avg of wrong shape", lambda: _opt_state("exp_avg", mg.optim.Adam),
         _error(ValueError, "Adam.load_state_dict: state 'exp_avg'")),
        ("SGD.load_state_dict, momentum_buffer of wrong shape",
         lambda: _opt_state("momentum_buffer", mg.optim.SGD), _error(ValueError, "SGD.load_state_dict")),
        ("binary_cross_entropy([1, 0.5], [1, 1])", lambda: F.binary_cross_entropy(mg.tensor([1.0, 0.5]),
                                                                                   mg.tensor([1.0, 1.0])),
         _value(lambda t: abs(t.item() - 0.3465736) < 1e-6)),
        ("binary_cross_entropy(1.5, 1)", lambda: F.binary_cross_entropy(mg.tensor([1.5]), mg.tensor([1.0])),
         _error(ValueError, "binary_cross_entropy: every element")),
        ("softmax([inf, 1, 0])", lambda: mg.softmax(mg.tensor([inf, 1.0, 0.0])), _value(_nan)),
        ("log_softmax([nan, 1, 0])", lambda: mg.log_softmax(mg.tensor([nan, 1.0, 0.0])), _value(_nan)),
        ("max([1, nan, 3]) gradient", lambda: _max_nan_grad(), _value(lambda g: list(g) == [0.0, 1.0, 0.0])),
        ("in-place add_ on a leaf that requires grad", lambda: mg.tensor([1.0], requires_grad=True).add_(1.0),
         _error(RuntimeError, "add_: a leaf tensor that requires grad")),
        ("mg.save of a list nested 600 deep", lambda: mg.save(_nested(600), os.devnull),
         _error(ValueError, "mg.save: obj")),
    ]
    return cases


def _crf_empty():
    from minigrad.models.crf import crf_nll
    return crf_nll(mg.zeros(0, 4, 3), np.zeros((0, 4), np.int64), mg.randn(3, 3))


def _max_nan_grad():
    x = mg.tensor([1.0, float("nan"), 3.0], requires_grad=True)
    mg.max(x).backward()
    return x.grad.numpy().tolist()


def _nested(depth):
    v = []
    for _ in range(depth):
        v = [v]
    return v


def run_misuse():
    rows = {"tried": 0, "clear errors": 0, "PyTorch-like results": 0, "silent-wrong": 0, "unclear errors": 0}
    failures = []
    for label, fn, expect in misuse_cases():
        rows["tried"] += 1
        try:
            with np.errstate(all="ignore"):
                out = fn()
        except Exception as e:  # noqa: BLE001
            if expect[0] == "error" and isinstance(e, expect[1]) and expect[2] in str(e):
                rows["clear errors"] += 1
            else:
                rows["unclear errors"] += 1
                failures.append(f"{label}: {type(e).__name__}: {e}")
            continue
        if expect[0] == "value" and expect[1](out):
            rows["PyTorch-like results"] += 1
        else:
            rows["silent-wrong"] += 1
            failures.append(f"{label}: returned {out!r}")
    return rows, failures


# ---- threads ----------------------------------------------------------------------------------------------
def run_threads(steps, runs):
    """One thread trains (forward, backward, step) while two run inference under no_grad; per run, count the
    failed training steps and whether grad mode was left off in the main thread."""
    failed = left_off = 0
    for _ in range(runs):
        model, stop = nn.Linear(8, 4), threading.Event()
        opt, x = mg.optim.SGD(model.parameters(), lr=1e-3), mg.randn(16, 8)

        def infer():
            while not stop.is_set():
                with mg.no_grad():
                    model(x)

        def train():
            nonlocal failed
            for _ in range(steps):
                try:
                    opt.zero_grad()
                    model(x).sum().backward()
                    opt.step()
                except Exception:  # noqa: BLE001
                    failed += 1
        others = [threading.Thread(target=infer) for _ in range(2)]
        for t in others:
            t.start()
        trainer = threading.Thread(target=train)
        trainer.start()
        trainer.join()
        stop.set()
        for t in others:
            t.join()
        left_off += not mg.is_grad_enabled()
    return {"training steps": steps * runs, "failed steps": failed, "runs": runs,
            "runs leaving grad mode off": left_off}


# ---- hostile checkpoints ----------------------------------------------------------------------------------
def _entry(i, raw):
    return {"member": f"arrays/{i}.bin", "dtype": "<f4", "shape": [len(raw) // 4], "nbytes": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest()}


def _manifest(root, arrays):
    return {"format": "minigrad-checkpoint", "version": 1, "root": root, "arrays": arrays}


def hostile_files(tmp, pad_mib):
    """(name, path) of crafted files, each of which must be refused with CheckpointError."""
    files = []

    def add(name, writer):
        p = tmp / f"hostile-{len(files)}.mgz"
        writer(p)
        files.append((name, p))

    raw = np.zeros(1 << 20, np.float32).tobytes()  # 4 MiB

    def dup(p):
        with zipfile.ZipFile(p, "w") as zf:
            root = {"type": "list", "items": [{"type": "array", "array": i} for i in range(1000)]}
            zf.writestr("minigrad.json", json.dumps(_manifest(root, [_entry(0, raw)] * 1000)))
            zf.writestr("arrays/0.bin", raw)
    add("one 4 MiB member referenced 1,000 times", dup)

    def deflated(p):
        with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
            with zf.open("minigrad.json", "w", force_zip64=True) as out:
                out.write(json.dumps(_manifest(None, [])).encode())
                block = b" " * (1 << 20)
                for _ in range(pad_mib):
                    out.write(block)
    add(f"deflated manifest padded with {pad_mib} MiB of spaces", deflated)

    def claims_huge(p):
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("minigrad.json", json.dumps(_manifest(None, [])))
        d = bytearray(p.read_bytes())
        cd = d.rindex(b"PK\x01\x02")
        d[cd + 24:cd + 28] = struct.pack("<I", 2**31)
        p.write_bytes(bytes(d))
    add("manifest claiming 2 GiB", claims_huge)

    for depth in (101, 500, 100_000):
        def deep(p, depth=depth):
            text = '{"type":"list","items":[' * depth + "]}" * depth
            with zipfile.ZipFile(p, "w") as zf:
                zf.writestr("minigrad.json",
                            '{"format":"minigrad-checkpoint","version":1,"arrays":[],"root":' + text + "}")
        add(f"manifest nested {depth:,} deep", deep)

    def shared_entry(p):
        small = raw[:4096]
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("minigrad.json", json.dumps(_manifest({"type": "array", "array": 0}, [_entry(0, small)])))
            zf.writestr("arrays/0.bin", small)
        d = bytearray(p.read_bytes())
        cd, eocd = d.rindex(b"PK\x01\x02"), d.rindex(b"PK\x05\x06")
        entry = bytes(d[cd:eocd])
        count, size = struct.unpack("<HI", d[eocd + 10:eocd + 16])
        d[eocd:eocd] = entry * 100
        eocd += 100 * len(entry)
        d[eocd + 8:eocd + 16] = struct.pack("<HHI", count + 100, count + 100, size + 100 * len(entry))
        p.write_bytes(bytes(d))
    add("central directory listing one member 101 times", shared_entry)

    base = tmp / "base.mgz"
    mg.save({"w": mg.randn(64, requires_grad=True), "lr": 0.5}, base)
    good = base.read_bytes()
    cd = good.index(b"PK\x01\x02")
    for name, off, value in [("encrypted flag", cd + 8, b"\x01\x00"),
                             ("unknown compression method", cd + 10, b"\x63\x00"),
                             ("deflate method on raw bytes", cd + 10, b"\x08\x00")]:
        def patch(p, off=off, value=value):
            d = bytearray(good)
            d[off:off + len(value)] = value
            p.write_bytes(bytes(d))
        add(name, patch)

    def pickled(p):
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("minigrad.json", json.dumps(_manifest({"type": "array", "array": 0}, [
                {"member": "arrays/0.bin", "dtype": "|O", "shape": [1], "nbytes": 8, "sha256": ""}])))
            zf.writestr("arrays/0.bin", b"cos\nsystem\n(S'echo pwned'\ntR.")
    add("object dtype (a pickle inside)", pickled)

    manifest = json.loads(zipfile.ZipFile(base).read("minigrad.json"))
    member = zipfile.ZipFile(base).read("arrays/0.bin")
    for name, change in [("shape overflowing int64", lambda m: m["arrays"][0].update(shape=[2**62, 2**62])),
                         ("root of the wrong type", lambda m: m.update(root=[1, 2])),
                         ("bad float literal", lambda m: m["root"]["items"][1][1].update(hex="zz")),
                         ("int array that requires grad", lambda m: m["arrays"][0].update(dtype="<i4")),
                         ("unhashable dict key", lambda m: m["root"]["items"].append(
                             [{"type": "list", "items": []}, None])),
                         ("array index out of range", lambda m: m["root"]["items"][0][1].update(array=7)),
                         ("missing member", lambda m: m["arrays"].append(_entry(5, b"")))]:
        def forged(p, change=change):
            m = json.loads(json.dumps(manifest))
            change(m)
            with zipfile.ZipFile(p, "w") as zf:
                zf.writestr("minigrad.json", json.dumps(m))
                zf.writestr("arrays/0.bin", member)
        add(name, forged)
    return files


def run_hostile(tmp, pad_mib):
    rows = []
    for name, path in hostile_files(tmp, pad_mib):
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            mg.load(path)
            outcome = "LOADED"
        except CheckpointError:
            outcome = "CheckpointError"
        except Exception as e:  # noqa: BLE001
            outcome = f"{type(e).__name__} (not CheckpointError)"
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append((name, path.stat().st_size, outcome, seconds, peak))
    return rows


# ---- damaged files: every bit flipped, every truncation, random garbage -------------------------------------
def _same(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, mg.Tensor):
        return (isinstance(b, mg.Tensor) and a.requires_grad == b.requires_grad and a.name == b.name
                and type(a) is type(b) and a.dtype == b.dtype and a.data.tobytes() == b.data.tobytes())
    if isinstance(a, float):
        return isinstance(b, float) and a.hex() == b.hex()
    return type(a) is type(b) and a == b


def run_fuzz(tmp, stride, n_random, seed=0):
    """Load every damaged variant of a small checkpoint: each must raise CheckpointError or give back exactly
    the saved object (a flip in bytes the reader ignores, such as a timestamp); anything else is counted."""
    obj = {"w": nn.Parameter(mg.randn(8)), "lr": 0.1, "step": 3}
    path = tmp / "fuzz.mgz"
    mg.save(obj, path)
    good = path.read_bytes()
    counts = {}

    def judge(kind, data):
        path.write_bytes(data)
        try:
            out = mg.load(path)
            verdict = "identical" if _same(obj, out) else "silent-wrong"
        except CheckpointError:
            verdict = "CheckpointError"
        except Exception as e:  # noqa: BLE001
            verdict = f"other: {type(e).__name__}"
        c = counts.setdefault(kind, {})
        c[verdict] = c.get(verdict, 0) + 1

    for bit in range(0, 8 * len(good), stride):
        d = bytearray(good)
        d[bit // 8] ^= 1 << (bit % 8)
        judge("single-bit flips", bytes(d))
    for n in range(0, len(good), stride):
        judge("truncations", good[:n])
    rng = random.Random(seed)
    for _ in range(n_random):
        d = bytearray(good)
        at, n = rng.randrange(len(d)), rng.randint(1, 16)
        d[at:at + n] = bytes(rng.randrange(256) for _ in range(n))
        judge("random byte runs overwritten", bytes(d))
    return len(good), counts


# ---- saves killed mid-write -------------------------------------------------------------------------------
_KILL_CHILD = """
import numpy as np, minigrad as mg
i = 0
while True:
    i += 1
    mg.save({{"v": np.full({n}, float(i), np.float32), "i": i}}, {path!r})
"""


def run_kill(tmp, tries, mib=64, seed=0):
    """SIGKILL a process that keeps saving a ``mib`` MiB checkpoint over ``path``: after each kill the file
    must load and be complete (some earlier save's), and the next save must remove the dead one's temporary."""
    rng = random.Random(seed)
    path = tmp / "kill.mgz"
    n = mib * (1 << 20) // 4
    mg.save({"v": np.zeros(n, np.float32), "i": 0}, path)
    intact = stale_seen = stale_left = 0
    for _ in range(tries):
        child = subprocess.Popen([sys.executable, "-c", _KILL_CHILD.format(n=n, path=str(path))], cwd=ROOT)
        time.sleep(rng.uniform(0.3, 2.0))
        child.send_signal(signal.SIGKILL)
        child.wait()
        try:
            out = mg.load(path)
            v = out["v"]
            intact += v.shape == (n,) and bool((v == out["i"]).all())
        except CheckpointError:
            pass
        stale_seen += sum(1 for e in os.listdir(tmp) if e.startswith(".kill.mgz."))
        mg.save({"v": np.zeros(4, np.float32), "i": 0}, tmp / "kill.mgz")  # any save of the path cleans up
        mg.save({"v": np.zeros(n, np.float32), "i": 0}, path)
        stale_left += sum(1 for e in os.listdir(tmp) if e.startswith(".kill.mgz."))
    return {"tries": tries, "MiB per save": mib, "previous file intact": intact,
            "temporaries left by the kills": stale_seen, "temporaries after the next save": stale_left}


# ---- report ---------------------------------------------------------------------------------------------------
def report(args):
    tmp = Path(tempfile.mkdtemp(prefix="minigrad-reliability-"))
    t0 = time.perf_counter()
    misuse, misuse_fail = run_misuse()
    threads = run_threads(args.thread_steps, args.thread_runs)
    hostile = run_hostile(tmp, args.pad_mib)
    size, fuzz = run_fuzz(tmp, args.stride, args.random)
    kill = run_kill(tmp, args.kills, args.kill_mib)
    took = time.perf_counter() - t0
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
               f"NumPy {np.__version__}")
    lines = [START, "",
             f"Generated by `python -m scripts.reliability --write-docs` on {when} ({machine}; {took:.0f} s).", "",
             "| misuse cases | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in misuse.items()]
    lines += ["", "| threads: one trains, two infer under `no_grad` | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in threads.items()]
    lines += ["", "| hostile checkpoint | bytes | result | seconds | peak traced MiB |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {b:,} | {o} | {s:.3f} | {p / 2**20:.1f} |" for n, b, o, s, p in hostile]
    lines += ["", f"Damaged copies of a {size}-byte checkpoint (each must raise `CheckpointError` or load exactly "
              "what was saved):", "", "| damage | tried | CheckpointError | identical | silent-wrong | other |",
              "|---|---|---|---|---|---|"]
    for kind, c in fuzz.items():
        other = sum(v for k, v in c.items() if k.startswith("other"))
        lines.append(f"| {kind} | {sum(c.values()):,} | {c.get('CheckpointError', 0):,} | {c.get('identical', 0):,} "
                     f"| {c.get('silent-wrong', 0)} | {other} |")
    lines += ["", "| saves killed with SIGKILL mid-write | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in kill.items()]
    lines += ["", END]
    text = "\n".join(lines)
    problems = list(misuse_fail)
    problems += [f"threads: {threads}"] if threads["failed steps"] or threads["runs leaving grad mode off"] else []
    problems += [f"hostile {n}: {o}" for n, _, o, _, _ in hostile if o != "CheckpointError"]
    problems += [f"fuzz {k}: {c}" for k, c in fuzz.items() if set(c) - {"CheckpointError", "identical"}]
    problems += [f"kill: {kill}"] if kill["previous file intact"] != kill["tries"] or kill[
        "temporaries after the next save"] else []
    return text, problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="sample the fuzz, fewer kills and thread steps")
    ap.add_argument("--write-docs", action="store_true", help="put the report into docs/testing.md")
    args = ap.parse_args(argv)
    q = args.quick
    args.stride, args.random = (23, 100) if q else (1, 2000)
    args.kills, args.kill_mib = (2, 8) if q else (20, 64)
    args.thread_steps, args.thread_runs = (100, 2) if q else (500, 10)
    args.pad_mib = 8 if q else 2048
    text, problems = report(args)
    print(text)
    if args.write_docs:
        doc = DOC.read_text()
        head, _, rest = doc.partition(START)
        doc = head + text + rest.partition(END)[2] if rest else doc.rstrip("\n") + "\n\n" + text + "\n"
        DOC.write_text(doc)
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
