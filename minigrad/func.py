"""Function transforms with ``torch.func``'s names and calling conventions: ``grad``, ``grad_and_value``, ``vjp``,
``jvp``, ``jacrev``, ``jacfwd``, ``hessian``, and ``hvp`` (as ``torch.autograd.functional.hvp``).

Reverse transforms run ``f`` on fresh aliases of the differentiated arguments and walk the recorded graph back
(``minigrad.grad``); forward transforms run ``f`` on dual tensors (``minigrad.forward_ad``). Both keep the
aliases linked to their arguments, so transforms compose: ``jacfwd(jacrev(f))`` is forward-over-reverse,
``grad(grad(f))`` reverse-over-reverse. There is no vmap: a Jacobian costs one reverse pass per output element
(``jacrev``) or one forward pass per input element (``jacfwd``).

Like PyTorch: a reverse transform computes gradients inside ``no_grad`` too (its result is then cut from the
outer graph); a ``no_grad`` block inside ``f`` makes its result a constant for reverse transforms; forward mode
ignores ``no_grad``. A gradient is itself differentiable (its backward recorded) exactly when ``f``'s graph
reaches a Tensor that requires grad outside the transform (an outer transform's input, a model parameter).
"""
from contextlib import nullcontext

from minigrad import backend
from minigrad.core import Tensor, enable_grad, grad as _grad, is_grad_enabled
from minigrad.forward_ad import Alias, dual_level, make_dual, unpack_dual
from minigrad.ops.shape import reshape, stack


# ---- argument checks and output structures ---------------------------------------------------------------------
def _argnums(argnums, nargs, fn):
    nums = (argnums,) if isinstance(argnums, int) else argnums
    if not isinstance(nums, tuple) or not nums or not all(isinstance(a, int) for a in nums):
        raise TypeError(f"{fn}: argnums must be an int or a non-empty tuple of ints, got {argnums!r}")
    for a in nums:
        if not -nargs <= a < nargs:
            raise ValueError(f"{fn}: argnums {argnums!r} out of range for {nargs} positional argument(s)")
    return tuple(a % nargs for a in nums)


def _check_input(x, what, fn):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: {what} must be a Tensor, got {type(x).__name__}")
    if not backend.is_floating(x.dtype):
        raise TypeError(f"{fn}: {what} must be floating-point to be differentiated, got {x.dtype} of shape {x.shape}")
    return x


def _flatten_out(out, fn, what="f"):
    """The Tensors of f's output (a Tensor, or a tuple/list of them) and whether it was a single Tensor."""
    if isinstance(out, Tensor):
        return [out], True
    if isinstance(out, (tuple, list)) and out and all(isinstance(o, Tensor) for o in out):
        return list(out), False
    kind = type(out).__name__ if not isinstance(out, (tuple, list)) else \
        f"{type(out).__name__} of {[type(o).__name__ for o in out]}"
    raise TypeError(f"{fn}: {what} must return a Tensor or a tuple of Tensors, got {kind}")


def _split_aux(out, has_aux, fn):
    if not has_aux:
        return out, None
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(f"{fn}: with has_aux=True, f must return a pair (output, aux), got {type(out).__name__}")
    return out[0], out[1]


def _zeros_like(x):
    return Tensor(x.xp.zeros(x.shape, dtype=x.dtype))


def _track(x):
    """A fresh alias of ``x`` that requires grad: linked to ``x``'s graph (and tangents) when it has one."""
    with enable_grad():
        a = Alias()(x)
    if not a.requires_grad:
        a.requires_grad = True
    return a


def _reaches_outer(outs, own):
    """Whether the graph of ``outs`` reaches a Tensor that requires grad other than the fresh leaves ``own``: an
    argument with a graph of its own, or a Tensor ``f`` closes over (an outer transform's input, a parameter).
    Then the gradient must itself be differentiable (``create_graph``)."""
    own = {id(x) for x in own if x.creator is None}
    stack, seen = [o.creator for o in outs if o.creator is not None], set()
    while stack:
        f = stack.pop()
        if id(f) in seen or f.edges is None:
            continue
        seen.add(id(f))
        for e in f.edges:  # an edge per input that wants a gradient
            if e is None:
                continue
            if not isinstance(e.node, Tensor):
                stack.append(e.node)
            elif id(e.node) not in own:
                return True
    return False


# ---- reverse mode --------------------------------------------------------------------------------------------
def vjp(func, *primals, has_aux=False):
    """``(func(*primals), vjp_fn)``: ``vjp_fn(cotangents)`` returns the tuple of ⟨cotangents, ∂func/∂primal_i⟩,
    one per primal (PyTorch's ``torch.func.vjp``)."""
    return _vjp(func, primals, has_aux, "vjp")


def _vjp(func, primals, has_aux, fn):
    if not primals:
        raise TypeError(f"{fn}: needs at least one primal")
    for i, p in enumerate(primals):
        _check_input(p, f"primals[{i}]", fn)
    outer = is_grad_enabled()
    xs = [_track(p) for p in primals]
    with enable_grad():
        out = func(*xs)
    out, aux = _split_aux(out, has_aux, fn)
    outs, single = _flatten_out(out, fn)
    outer = outer and _reaches_outer(outs, xs)  # keep the backward's graph only if something outside needs it

    def vjp_fn(cotangents):
        cots, _ = _flatten_out(cotangents, f"{fn}'s vjp_fn", "cotangents")
        if (len(cots) == 1) != single or len(cots) != len(outs):
            raise ValueError(f"{fn}'s vjp_fn: cotangents must match the output's structure ({len(outs)} Tensor"
                             f"{'' if single else 's in a tuple'}), got {len(cots)}")
        for i, (c, o) in enumerate(zip(cots, outs)):
            if c.shape != o.shape or c.dtype != o.dtype:
                raise ValueError(f"{fn}'s vjp_fn: cotangent {i} has shape {c.shape} and dtype {c.dtype}, the output "
                                 f"has shape {o.shape} and dtype {o.dtype}")
        pairs = [(o, c) for o, c in zip(outs, cots) if o.requires_grad]
        if not pairs:
            return tuple(_zeros_like(x) for x in xs)
        with enable_grad():
            gs = _grad([o for o, _ in pairs], xs, [c for _, c in pairs], retain_graph=True, create_graph=outer,
                       allow_unused=True)
        return tuple(_zeros_like(x) if g is None else g for x, g in zip(xs, gs))

    return (out, vjp_fn) if not has_aux else (out, vjp_fn, aux)


def grad_and_value(func, argnums=0, has_aux=False):
    """A function returning (the gradient of scalar ``func`` w.r.t. the ``argnums`` arguments, its value);
    with ``has_aux``, ``(gradient, (value, aux))`` (PyTorch's ``torch.func.grad_and_value``)."""
    def wrapper(*args, **kwargs):
        nums = _argnums(argnums, len(args), "grad_and_value")
        picked = [args[a] for a in nums]

        def f(*xs):
            full = list(args)
            for a, x in zip(nums, xs):
                full[a] = x
            return func(*full, **kwargs)

        res = _vjp(f, picked, has_aux, "grad")
        out, vjp_fn = res[0], res[1]
        if not isinstance(out, Tensor) or out.size != 1:
            what = f"a Tensor of shape {out.shape}" if isinstance(out, Tensor) else type(out).__name__
            raise RuntimeError(f"grad: f must return a scalar Tensor (one element), got {what}; "
                               "use vjp or jacrev for other outputs")
        gs = vjp_fn(Tensor(out.xp.ones(out.shape, dtype=out.dtype)))
        g = gs[0] if isinstance(argnums, int) else gs
        return (g, out) if not has_aux else (g, (out, res[2]))
    return wrapper


def grad(func, argnums=0, has_aux=False):
    """The gradient of scalar ``func`` w.r.t. argument ``argnums`` (an int, or a tuple: a tuple of gradients);
    with ``has_aux``, ``(gradient, aux)`` (PyTorch's ``torch.func.grad``)."""
    gv = grad_and_value(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        g, value = gv(*args, **kwargs)
        return (g, value[1]) if has_aux else g
    return wrapper


# ---- forward mode --------------------------------------------------------------------------------------------
def jvp(func, primals, tangents, has_aux=False):
    """``(func(*primals), J·tangents)`` by one forward pass carrying tangents (PyTorch's ``torch.func.jvp``);
    ``primals`` and ``tangents`` are tuples of Tensors of equal shapes and dtypes."""
    for name, v in (("primals", primals), ("tangents", tangents)):
        if not isinstance(v, tuple):
            raise TypeError(f"jvp: {name} must be a tuple of Tensors (func is called as func(*primals)), "
                            f"got {type(v).__name__}")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    if not primals:
        raise TypeError("jvp: needs at least one primal")
    for i, (p, t) in enumerate(zip(primals, tangents)):
        _check_input(p, f"primals[{i}]", "jvp")
        if not isinstance(t, Tensor):
            raise TypeError(f"jvp: tangents[{i}] must be a Tensor, got {type(t).__name__}")
        if t.shape != p.shape or t.dtype != p.dtype:
            raise ValueError(f"jvp: tangents[{i}] has shape {t.shape} and dtype {t.dtype}, but primals[{i}] has "
                             f"shape {p.shape} and dtype {p.dtype}; a tangent must match its primal")
        if t.device != p.device:
            raise ValueError(f"jvp: tangents[{i}] is on {t.device}, primals[{i}] on {p.device}")
    with dual_level() as level:
        duals = [make_dual(p, t, level) for p, t in zip(primals, tangents)]
        out = func(*duals)
        out, aux = _split_aux(out, has_aux, "jvp")
        outs, single = _flatten_out(out, "jvp")
        touts = []
        for o in outs:
            t = unpack_dual(o, level)
            touts.append(_zeros_like(o) if t is None else t)
    tout = touts[0] if single else type(out)(touts)
    return (out, tout) if not has_aux else (out, tout, aux)


# ---- Jacobians and Hessians ----------------------------------------------------------------------------------
def _structure(per_out, single_out, argnums):
    """PyTorch's nesting: outputs outside, arguments inside; a level is a tuple unless it was a single item."""
    rows = [r[0] if isinstance(argnums, int) else tuple(r) for r in per_out]
    return rows[0] if single_out else tuple(rows)


def jacrev(func, argnums=0, has_aux=False):
    """The Jacobian by reverse mode: one backward pass per output element. Shape ``out.shape + arg.shape``
    (PyTorch's ``torch.func.jacrev``, nesting outputs outside and ``argnums`` inside)."""
    def wrapper(*args, **kwargs):
        nums = _argnums(argnums, len(args), "jacrev")

        def f(*xs):
            full = list(args)
            for a, x in zip(nums, xs):
                full[a] = x
            return func(*full, **kwargs)

        res = _vjp(f, [args[a] for a in nums], has_aux, "jacrev")
        out, vjp_fn = res[0], res[1]
        outs, single = _flatten_out(out, "jacrev")
        xs = [args[a] for a in nums]
        per_out = []
        for k, o in enumerate(outs):
            rows = [[] for _ in xs]
            for j in range(o.size):
                cots = [_zeros_like(p) for p in outs]
                cots[k] = Tensor(_basis(o, j))
                gs = vjp_fn(cots[0] if single else tuple(cots))
                for r, g in zip(rows, gs):
                    r.append(g)
            per_out.append([_jacobian(r, o.shape, x) for r, x in zip(rows, xs)])
        jac = _structure(per_out, single, argnums)
        return (jac, res[2]) if has_aux else jac
    return wrapper


def jacfwd(func, argnums=0, has_aux=False):
    """The Jacobian by forward mode: one forward pass per input element (a jvp along each basis vector).
    Shape ``out.shape + arg.shape`` (PyTorch's ``torch.func.jacfwd``)."""
    def wrapper(*args, **kwargs):
        nums = _argnums(argnums, len(args), "jacfwd")
        xs = [_check_input(args[a], f"argument {a}", "jacfwd") for a in nums]

        def f(*ys):
            full = list(args)
            for a, y in zip(nums, ys):
                full[a] = y
            return func(*full, **kwargs)

        cols = [[] for _ in xs]  # cols[i][j]: the tangents of all outputs along basis vector j of input i
        out = aux = None
        for i, x in enumerate(xs):
            for j in range(x.size):
                tangents = tuple(Tensor(_basis(y, j)) if n == i else _zeros_like(y) for n, y in enumerate(xs))
                res = jvp(f, tuple(xs), tangents, has_aux)
                out, aux = res[0], (res[2] if has_aux else None)
                cols[i].append(_flatten_out(res[1], "jacfwd")[0])
        if out is None:  # every differentiated argument is empty: evaluate once for the output's shape
            out = _split_aux(f(*xs), has_aux, "jacfwd")
            out, aux = out
        outs, single = _flatten_out(out, "jacfwd")
        per_out = []
        for k, o in enumerate(outs):
            per_out.append([_jacobian_fwd([c[k] for c in cols[i]], o, x) for i, x in enumerate(xs)])
        jac = _structure(per_out, single, argnums)
        return (jac, aux) if has_aux else jac
    return wrapper


def _basis(like, j):
    e = like.xp.zeros(like.size, dtype=like.dtype)
    e[j] = 1
    return e.reshape(like.shape)


def _jacobian(rows, out_shape, x):
    """Rows ∂out_j/∂x (one per output element) as one Tensor of shape out_shape + x.shape (differentiable)."""
    if not rows:
        return Tensor(x.xp.zeros(tuple(out_shape) + x.shape, dtype=x.dtype))
    return reshape(stack(rows, 0), tuple(out_shape) + x.shape)


def _jacobian_fwd(cols, o, x):
    """Columns ∂out/∂x_j (one per input element) as one Tensor of shape out.shape + x.shape (differentiable)."""
    if not cols:
        return Tensor(o.xp.zeros(o.shape + x.shape, dtype=o.dtype))
    return reshape(stack(cols, -1), o.shape + x.shape)


def hessian(func, argnums=0):
    """The Hessian of scalar ``func``, forward-over-reverse: ``jacfwd(jacrev(func, argnums), argnums)``."""
    return jacfwd(jacrev(func, argnums), argnums)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), H·v)`` for scalar ``func``, forward-over-reverse: one forward pass carrying tangents
    ``v`` through the reverse pass (PyTorch's ``torch.autograd.functional.hvp``: ``inputs`` and ``v`` are a
    Tensor or a tuple of Tensors, and the result has the same form)."""
    single = isinstance(inputs, Tensor)
    xs = (inputs,) if single else inputs
    if not isinstance(xs, tuple):
        raise TypeError(f"hvp: inputs must be a Tensor or a tuple of Tensors, got {type(inputs).__name__}")
    if v is None:
        if not all(isinstance(x, Tensor) and x.size == 1 for x in xs):
            raise RuntimeError("hvp: v may be omitted only when every input has one element")
        vs = tuple(Tensor(x.xp.ones(x.shape, dtype=x.dtype)) for x in xs)
    else:
        vs = (v,) if isinstance(v, Tensor) else v
        if not isinstance(vs, tuple) or len(vs) != len(xs):
            raise ValueError(f"hvp: v must have the structure of inputs ({len(xs)} Tensor(s)), got {v!r:.80}")
    for i, x in enumerate(xs):
        _check_input(x, f"inputs[{i}]", "hvp")
    gv = grad_and_value(func, tuple(range(len(xs))))

    def g(*ys):
        grads, value = gv(*ys)
        if value.size != 1:
            raise RuntimeError(f"hvp: func must return a single-element Tensor, got shape {value.shape}")
        return grads, value

    if strict:
        raise NotImplementedError("hvp: strict=True (detecting inputs the output does not depend on) is not "
                                  "supported; an unused input gets a zero Hessian-vector product")
    with enable_grad() if create_graph else nullcontext():
        _, hv, value = jvp(g, tuple(xs), tuple(vs), has_aux=True)
    if not create_graph:
        value, hv = value.detach(), tuple(h.detach() for h in hv)
    return value, (hv[0] if single else tuple(hv))

