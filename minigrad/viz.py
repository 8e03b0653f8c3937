"""Draw the recorded graph of a tensor as Graphviz DOT: boxes are Functions, ellipses are tensors.

The graph is what autograd keeps: each tensor's ``creator`` Function and that Function's ``edges`` (one for each
input that wants a gradient: the Function that made it, or the leaf itself), so the walk goes from the output
back to the leaves; arrows are drawn in data-flow direction (inputs above outputs). An input that needs no
gradient (data, a constant) is not part of the graph, so it is not drawn.
"""
import shutil
import subprocess

import numpy as np

from minigrad import backend
from minigrad.core import Edge, Tensor, graph_key

COLORS = {"parameter": "#a6cee3", "input": "#fdbf6f", "constant": "#e0e0e0", "output": "#b2df8a",
          "tensor": "#ffffff", "function": "#f0f0f0"}


def _param_names(params):
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        params = params.named_parameters()
    elif isinstance(params, dict):
        params = params.items()
    return {id(p): name for name, p in params}


def _quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _key(t):
    return (id(t.node), t.index) if isinstance(t, Edge) else graph_key(t)


def _live(t):
    """The Tensor an Edge leads to while someone still holds it (for its name, device and grad), else the Edge."""
    if isinstance(t, Tensor):
        return t
    if isinstance(t.node, Tensor):
        return t.node
    outputs = getattr(t.node, "outputs", None)
    o = outputs[t.index]() if outputs else None
    return t if o is None else o


def _role(t, output, names):
    if _key(t) == _key(output):
        return "output"
    if isinstance(t, Edge) or t.creator is not None:
        return "tensor"
    if id(t) in names or type(t).__name__ == "Parameter":
        return "parameter"
    return "input" if t.requires_grad else "constant"


def _tensor_label(t, names, show_grad_norms):
    name = names.get(id(t)) or getattr(t, "name", None)
    lines = [name] if isinstance(name, str) else []
    lines.append(f"{tuple(t.shape)} {t.dtype}" + (f" {t.device}" if isinstance(t, Tensor) else ""))
    if show_grad_norms and getattr(t, "grad", None) is not None:
        g = backend.to_numpy(t.grad.data).astype(np.float64)
        lines.append(f"|grad| = {float(np.sqrt((g * g).sum())):.4g}")
    return "\n".join(lines)


def to_dot(tensor, show_grad_norms=False, params=None):
    """DOT text of the graph that produced ``tensor``.

    ``params`` (a Module, a dict or ``named_parameters()``) names parameter ellipses; otherwise a tensor's
    ``name`` is shown. Colours: parameters blue, other leaves that require grad orange, the output green.
    ``show_grad_norms`` adds the L2 norm of ``.grad`` where there is one (call ``backward(retain_graph=True)``
    first, or the graph behind the output is already freed).
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot expects a Tensor, got {type(tensor).__name__}")
    names = _param_names(params)
    ids, done, nodes, edges = {}, set(), [], []

    def nid(obj, prefix):  # tensors by graph position: an intermediate may be known only by its Edge
        key = _key(obj) if prefix == "t" else id(obj)
        return ids.setdefault(key, f"{prefix}{len(ids)}")

    stack = [tensor]
    while stack:  # iterative, so graphs thousands of ops deep (long RNN unrolls) are fine
        t = _live(stack.pop())
        if _key(t) in done:
            continue
        done.add(_key(t))
        nodes.append(f"  {nid(t, 't')} [shape=ellipse, fillcolor={_quote(COLORS[_role(t, tensor, names)])}, "
                     f"label={_quote(_tensor_label(t, names, show_grad_norms))}];")
        f = t.node if isinstance(t, Edge) else t.creator  # an Edge still here leads to a Function's output
        if f is None:
            continue
        edges.append(f"  {nid(f, 'f')} -> {nid(t, 't')};")
        if id(f) in done:
            continue
        done.add(id(f))
        label = type(f).__name__ + ("\n(freed by backward;\nuse retain_graph=True)" if f.edges is None else "")
        nodes.append(f"  {nid(f, 'f')} [shape=box, fillcolor={_quote(COLORS['function'])}, label={_quote(label)}];")
        inputs = [e for e in f.edges or () if e is not None]
        for e in inputs:
            edges.append(f"  {nid(e, 't')} -> {nid(f, 'f')};")
        stack.extend(reversed(inputs))  # first input popped first: drawn leftmost
    head = ["digraph minigrad {", "  rankdir=TB;",
            '  node [style=filled, fontname="Helvetica", fontsize=10];', '  edge [arrowsize=0.7];']
    return "\n".join(head + nodes + edges + ["}"]) + "\n"


def render(tensor, path, format="png", **kwargs):
    """Write the graph of ``tensor`` to ``path`` as ``format`` (png, svg, pdf) with Graphviz's ``dot``."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("render needs the Graphviz 'dot' program, which is not on PATH; install Graphviz "
                           "(apt-get install graphviz, brew install graphviz or conda install graphviz) or "
                           "write mg.viz.to_dot(tensor) to a .dot file")
    result = subprocess.run([dot, f"-T{format}", "-o", str(path)], input=to_dot(tensor, **kwargs).encode(),
                            capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"dot -T{format} failed for {path}: {result.stderr.decode(errors='replace').strip()}")
    return path
