"""mg.viz.to_dot / render: the recorded graph as Graphviz DOT."""
import re
import shutil

import pytest

import minigrad as mg
from minigrad import viz
from minigrad.nn.module import Parameter


def _parse(dot):
    nodes = dict(re.findall(r"^\s+(\w+) \[shape=(\w+)", dot, re.M))
    edges = re.findall(r"^\s+(\w+) -> (\w+);", dot, re.M)
    labels = dict(re.findall(r'^\s+(\w+) \[.*label="((?:[^"\\]|\\.)*)"\];', dot, re.M))
    return nodes, edges, labels


def _small_graph():
    x = mg.tensor([[1.0, 2.0]])
    x.name = "x"
    w = Parameter(mg.ones(2, 3))
    b = Parameter(mg.zeros(3))
    y = mg.tanh(x @ w + b).sum()
    return x, w, b, y


def test_node_and_edge_counts_of_a_known_graph():
    x, w, b, y = _small_graph()
    nodes, edges, labels = _parse(viz.to_dot(y))
    boxes = sorted(labels[n] for n, s in nodes.items() if s == "box")
    assert boxes == ["Add", "Matmul", "Sum", "Tanh"] or boxes == ["Add", "MatMul", "Sum", "Tanh"]
    ellipses = [n for n, s in nodes.items() if s == "ellipse"]
    assert len(ellipses) == 6  # w, b, x@w, +b, tanh, sum: x wants no gradient, so the graph does not keep it
    assert len(edges) == (1 + 2 + 1 + 1) + 4  # one edge per input with a gradient, one from each op to its output
    assert len(set(edges)) == len(edges)
    for src, dst in edges:  # data flow: tensor -> function -> tensor
        assert nodes[src] != nodes[dst]


def test_edges_follow_data_flow_and_the_output_is_last():
    x, w, b, y = _small_graph()
    nodes, edges, labels = _parse(viz.to_dot(y))
    by_label = {v: k for k, v in labels.items()}
    sum_box = by_label["Sum"]
    out = [dst for src, dst in edges if src == sum_box]
    assert len(out) == 1 and labels[out[0]] == "() float32 cpu"
    assert not any(src == out[0] for src, _ in edges)  # nothing flows out of the output
    assert "x\\n(1, 2) float32 cpu" not in by_label  # data that wants no gradient is not in the graph
    w_node = [n for n, label in labels.items() if label.startswith("(2, 3) float32 cpu")][0]
    assert all(dst != w_node for _, dst in edges)  # leaves have no incoming edge


def test_labels_names_colours_and_grad_norms():
    x, w, b, y = _small_graph()
    y.backward(retain_graph=True)
    dot = viz.to_dot(y, show_grad_norms=True, params={"layer.weight": w, "layer.bias": b})
    assert "layer.weight\\n(2, 3) float32 cpu\\n|grad| = " in dot
    assert "layer.bias\\n(3,) float32 cpu" in dot
    norm = float(re.search(r"layer.bias\\n\(3,\) float32 cpu\\n\|grad\| = ([0-9.e+-]+)", dot).group(1))
    assert norm == pytest.approx(float((b.grad.numpy() ** 2).sum() ** 0.5), rel=1e-3)
    assert dot.count(viz.COLORS["parameter"]) == 2 and dot.count(viz.COLORS["output"]) == 1
    assert dot.count(viz.COLORS["constant"]) == 0  # x does not require grad: not kept, not drawn
    assert "|grad|" not in viz.to_dot(y)


def test_params_from_a_module_and_shared_inputs():
    class Net(mg.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = Parameter(mg.ones(2))

    net = Net()
    y = net.scale * net.scale  # the same tensor twice: one node, two edges
    nodes, edges, labels = _parse(viz.to_dot(y, params=net))
    assert len(nodes) == 3 and len(edges) == 3
    assert "scale\\n(2,) float32 cpu" in labels.values()


def test_freed_graph_is_marked_and_bad_input_is_named():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2.0).sum()
    y.backward()
    assert "freed by backward" in viz.to_dot(y)
    with pytest.raises(TypeError, match="expects a Tensor"):
        viz.to_dot([1, 2])


def test_deep_graph_does_not_recurse():
    x = mg.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    nodes, edges, _ = _parse(viz.to_dot(y))
    assert len([n for n, s in nodes.items() if s == "box"]) == 3000


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_render_svg_is_valid(tmp_path):
    *_, y = _small_graph()
    path = viz.render(y, tmp_path / "graph.svg", format="svg")
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "Tanh" in text


def test_render_without_dot_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    *_, y = _small_graph()
    with pytest.raises(RuntimeError, match="install Graphviz"):
        viz.render(y, tmp_path / "g.png")
