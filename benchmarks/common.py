"""What the benchmark scripts share: the repository root, a description of the machine, device sync, one
thread per library, and where each page goes."""
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import minigrad as mg

ROOT = Path(__file__).resolve().parent.parent


def machine(device="cpu"):
    """CPU model, visible cores, OS, Python and NumPy (and the GPU on a cuda device), read off this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = (f"{cpu}, {os.cpu_count()} cores visible, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, NumPy {mg.backend.np.__version__}")
    if device.startswith("cuda"):
        cp = mg.backend.cp
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        text += f"; GPU: {props['name'].decode()}, CuPy {cp.__version__}"
    return text


def interleaved(steps, repeat):
    """Per step: median wall time, median process CPU time, wall min and max (s) over ``repeat`` rounds after
    one warm-up. Each round takes every step once, in turn, so a change of load on a shared machine hits all
    alike; wall time includes waiting for a core, CPU time does not."""
    for step in steps.values():
        step()
    walls, cpus = {k: [] for k in steps}, {k: [] for k in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            w, c = time.perf_counter(), time.process_time()
            step()
            walls[name].append(time.perf_counter() - w)
            cpus[name].append(time.process_time() - c)
    return {k: (statistics.median(walls[k]), statistics.median(cpus[k]), min(walls[k]), max(walls[k])) for k in steps}


def sync(device):
    """Wait for the GPU, so that a timing covers the work and not just its launch."""
    if device.startswith("cuda"):
        mg.backend.cp.cuda.Stream.null.synchronize()


def one_thread(threads=1):
    """PyTorch (None when absent) and NumPy's BLAS on ``threads`` threads; returns (torch, a note saying so).
    On a shared 2-core machine spinning thread pools slow every later measurement."""
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
        blas = f"NumPy's BLAS on {threads} thread(s) (threadpoolctl)"
    except ImportError:
        env = os.environ.get("OPENBLAS_NUM_THREADS")
        blas = f"NumPy's BLAS on OPENBLAS_NUM_THREADS={env}" if env else "NumPy's BLAS not limited"
    torch_note = f"torch {torch.__version__} on {threads} thread(s)" if torch else "torch absent"
    return torch, f"{torch_note}, {blas}"


def page(name, device, out=None):
    """Where a script's page goes: ``out``, else docs/benchmarks/<name>.md (<name>-cuda.md on a GPU)."""
    if out:
        return Path(out)
    return ROOT / "docs" / "benchmarks" / (f"{name}.md" if device == "cpu" else f"{name}-cuda.md")


def write_page(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")


def splice(path, name, text):
    """Put ``text`` between the ``<!-- name:start -->`` and ``<!-- name:end -->`` markers of the page ``path``."""
    path = Path(path)
    src = path.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    i, j = src.index(start) + len(start), src.index(end)
    path.write_text(src[:i] + "\n" + text.strip() + "\n" + src[j:])
    print(f"wrote the {name} section of {path}")


def markdown_table(header, rows):
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def today():
    return datetime.date.today().isoformat()
