"""PyTorch's argument names as aliases: ``dim=`` for ``axis=`` and ``keepdim=`` for ``keepdims=``, the way PyTorch
accepts ``axis=`` for ``dim=``. One decorator does it for every op, so the spelling rules live in one place."""
import functools
import inspect

ALIASES = {"dim": "axis", "keepdim": "keepdims"}  # PyTorch's name -> ours


def torch_names(fn):
    """Let ``fn`` (which takes ``axis`` and/or ``keepdims``) also take ``dim`` / ``keepdim``. Giving both spellings
    of one argument is a TypeError naming both."""
    params = list(inspect.signature(fn).parameters)
    pairs = [(alias, name, params.index(name)) for alias, name in ALIASES.items() if name in params]
    if not pairs:
        raise TypeError(f"torch_names: {fn.__name__} takes neither axis nor keepdims")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if kwargs:
            for alias, name, pos in pairs:
                if alias in kwargs:
                    if name in kwargs or len(args) > pos:
                        raise TypeError(f"{fn.__name__}() got both {name}= and {alias}= (its PyTorch spelling); "
                                        f"pass one of them")
                    kwargs[name] = kwargs.pop(alias)
        return fn(*args, **kwargs)
    return wrapper
