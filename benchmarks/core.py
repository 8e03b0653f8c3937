"""Engine workloads, each written once per engine: minigrad, raw NumPy (the floor) and the peers that install.

Every function returns a zero-argument callable that runs one repetition; ``timing`` times it.
"""
import time

import numpy as np

import minigrad as mg

C = 1.0001


def timing(step, repeat=7, warmup=1, budget_s=20.0):
    """Median and spread (min–max) of ``step()`` in seconds; fewer repeats when a step is slow."""
    for _ in range(warmup):
        step()
    times = []
    start = time.perf_counter()
    while len(times) < repeat and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), float(min(times)), float(max(times)), len(times)


def sync(device):
    if device.startswith("cuda"):
        mg.backend.cp.cuda.Stream.null.synchronize()


# ---- chain of n element-wise ops --------------------------------------------------------------------------
def chain(engine, shape, n, backward, device="cpu"):
    data = np.random.default_rng(0).random(shape).astype(np.float32)
    if engine == "minigrad":
        x = mg.tensor(data, device=device, requires_grad=True)

        def step():
            y = x
            for _ in range(n):
                y = y * C
            if backward:
                y.backward(mg.ones_like(y))
                x.grad = None
            sync(device)
        return step
    if engine == "numpy":
        c = np.float32(C)

        def step():
            y = data
            for _ in range(n):
                y = y * c
            if backward:
                g = np.ones_like(y)
                for _ in range(n):
                    g = g * c
        return step
    if engine == "torch":
        import torch
        dev = "cuda" if device.startswith("cuda") else "cpu"
        x = torch.tensor(data, device=dev, requires_grad=True)

        def step():
            y = x
            for _ in range(n):
                y = y * C
            if backward:
                y.backward(torch.ones_like(y))
                x.grad = None
            if dev == "cuda":
                torch.cuda.synchronize()
        return step
    if engine == "autograd":
        from autograd import make_vjp

        def f(x):
            for _ in range(n):
                x = x * C
            return x

        def step():
            if backward:
                vjp, y = make_vjp(f)(data)
                vjp(np.ones_like(y))
            else:
                make_vjp(f)(data)
        return step
    if engine == "mygrad":
        import mygrad

        def step():
            x = mygrad.tensor(data)
            y = x
            for _ in range(n):
                y = y * C
            if backward:
                y.backward(np.ones_like(data))
        return step
    if engine == "micrograd":
        if shape != ():
            return None
        import sys
        from micrograd.engine import Value
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * n + 1000))  # its topological sort recurses

        def step():
            x = Value(float(data))
            y = x
            for _ in range(n):
                y = y * C
            if backward:
                y.backward()
        return step
    raise ValueError(engine)


# ---- MLP 784-256-256-10 training step with Adam ---------------------------------------------------------------
def mlp_data(batch=128):
    rng = np.random.default_rng(0)
    return rng.random((batch, 784), dtype=np.float32), rng.integers(0, 10, batch)


def _init_mlp(rng):
    sizes = [(784, 256), (256, 256), (256, 10)]
    params = []
    for fan_in, fan_out in sizes:
        b = 1 / np.sqrt(fan_in)
        params += [rng.uniform(-b, b, (fan_out, fan_in)).astype(np.float32),
                   rng.uniform(-b, b, fan_out).astype(np.float32)]
    return params


class NumpyAdam:
    """Adam on a list of arrays, in place (PyTorch's update rule)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.p, self.lr, self.b1, self.b2, self.eps, self.t = params, lr, betas[0], betas[1], eps, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for p, g, m, v in zip(self.p, grads, self.m, self.v):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            denom = np.sqrt(v)
            denom /= np.sqrt(c2)
            denom += self.eps
            p -= (self.lr / c1) * m / denom


def numpy_mlp_grads(params, X, onehot):
    """Gradients of the mean cross-entropy of the MLP, by hand: the floor's forward and backward."""
    W1, b1, W2, b2, W3, b3 = params
    h1 = X @ W1.T + b1
    a1 = np.maximum(h1, 0)
    h2 = a1 @ W2.T + b2
    a2 = np.maximum(h2, 0)
    z = a2 @ W3.T + b3
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    gz = (p - onehot) / len(X)
    g2 = (gz @ W3) * (h2 > 0)
    g1 = (g2 @ W2) * (h1 > 0)
    return [g1.T @ X, g1.sum(0), g2.T @ a1, g2.sum(0), gz.T @ a2, gz.sum(0)]


def mlp_step(engine, device="cpu"):
    X, y = mlp_data()
    rng = np.random.default_rng(1)
    if engine == "minigrad":
        from minigrad import nn
        from minigrad.optim import Adam
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
        model.to(device)
        opt = Adam(model.parameters(), lr=1e-3)
        xb, yb = mg.tensor(X, device=device), mg.tensor(y, device=device)

        def step():
            opt.zero_grad()
            loss = mg.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            sync(device)
        return step
    if engine == "numpy":
        params = _init_mlp(rng)
        opt = NumpyAdam(params)
        onehot = np.eye(10, dtype=np.float32)[y]

        def step():
            opt.step(numpy_mlp_grads(params, X, onehot))
        return step
    if engine == "torch":
        import torch
        dev = "cuda" if device.startswith("cuda") else "cpu"
        model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                    torch.nn.ReLU(), torch.nn.Linear(256, 10)).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xb, yb = torch.tensor(X, device=dev), torch.tensor(y, device=dev)

        def step():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            if dev == "cuda":
                torch.cuda.synchronize()
        return step
    if engine == "autograd":
        import autograd.numpy as anp
        from autograd import grad
        params = _init_mlp(rng)
        opt = NumpyAdam(params)

        def loss_fn(ps):
            W1, b1, W2, b2, W3, b3 = ps
            a1 = anp.maximum(anp.dot(X, W1.T) + b1, 0)
            a2 = anp.maximum(anp.dot(a1, W2.T) + b2, 0)
            z = anp.dot(a2, W3.T) + b3
            z = z - anp.max(z, axis=1, keepdims=True)
            lp = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
            return -anp.mean(lp[np.arange(len(y)), y])
        g = grad(loss_fn)

        def step():
            opt.step(g(params))
        return step
    if engine == "mygrad":
        import mygrad
        params = [mygrad.tensor(p) for p in _init_mlp(rng)]
        opt = NumpyAdam([p.data for p in params])

        def step():
            W1, b1, W2, b2, W3, b3 = params
            a1 = mygrad.maximum(mygrad.matmul(X, W1.T) + b1, 0)
            a2 = mygrad.maximum(mygrad.matmul(a1, W2.T) + b2, 0)
            z = mygrad.matmul(a2, W3.T) + b3
            z = z - mygrad.max(z, axis=1, keepdims=True).data
            lp = z - mygrad.log(mygrad.sum(mygrad.exp(z), axis=1, keepdims=True))
            loss = -mygrad.mean(lp[np.arange(len(y)), y])
            loss.backward()
            opt.step([p.grad for p in params])
            for p in params:
                p.null_grad()
        return step
    return None


# ---- CNN training step on 28x28 images ------------------------------------------------------------------------
def cnn_step(engine, device="cpu", batch=64):
    rng = np.random.default_rng(0)
    X = rng.random((batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    if engine == "minigrad":
        from minigrad import nn
        from minigrad.optim import Adam
        model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
        model.to(device)
        opt = Adam(model.parameters(), lr=1e-3)
        xb, yb = mg.tensor(X, device=device), mg.tensor(y, device=device)

        def step():
            opt.zero_grad()
            mg.cross_entropy(model(xb), yb).backward()
            opt.step()
            sync(device)
        return step
    if engine == "torch":
        import torch
        tnn = torch.nn
        dev = "cuda" if device.startswith("cuda") else "cpu"
        model = tnn.Sequential(tnn.Conv2d(1, 16, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                               tnn.Conv2d(16, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                               tnn.Flatten(), tnn.Linear(32 * 7 * 7, 10)).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xb, yb = torch.tensor(X, device=dev), torch.tensor(y, device=dev)

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            if dev == "cuda":
                torch.cuda.synchronize()
        return step
    return None


# ---- backward of a 100,000-node graph (time and peak memory, measured in a fresh process) -------------------
GRAPH_NODES = 100_000


def big_graph(engine):
    """Build a chain of GRAPH_NODES ops on a (16,) vector, then time its backward alone."""
    data = np.linspace(0, 1, 16)
    if engine == "minigrad":
        x = mg.tensor(data, requires_grad=True)
        y = x
        for i in range(GRAPH_NODES):
            y = y * C if i % 2 else y + 0.5
        t = time.perf_counter()
        y.backward(mg.ones_like(y))
        return time.perf_counter() - t
    if engine == "torch":
        import torch
        x = torch.tensor(data, requires_grad=True)
        y = x
        for i in range(GRAPH_NODES):
            y = y * C if i % 2 else y + 0.5
        t = time.perf_counter()
        y.backward(torch.ones_like(y))
        return time.perf_counter() - t
    if engine == "mygrad":
        import mygrad
        x = mygrad.tensor(data)
        y = x
        for i in range(GRAPH_NODES):
            y = y * C if i % 2 else y + 0.5
        t = time.perf_counter()
        y.backward(np.ones_like(data))
        return time.perf_counter() - t
    if engine == "autograd":
        from autograd import make_vjp

        def f(x):
            for i in range(GRAPH_NODES):
                x = x * C if i % 2 else x + 0.5
            return x
        vjp, y = make_vjp(f)(data)
        t = time.perf_counter()
        vjp(np.ones_like(y))
        return time.perf_counter() - t
    if engine == "micrograd":
        from micrograd.engine import Value
        x = Value(0.5)
        y = x
        for i in range(GRAPH_NODES):
            y = y * C if i % 2 else y + 0.5
        t = time.perf_counter()
        y.backward()
        return time.perf_counter() - t
    raise ValueError(engine)
