"""Where the data sets are cached, and the error a missing one raises (shared by the loaders and the fetcher)."""
import os


class DatasetNotFound(FileNotFoundError):
    """The files of a dataset are not installed; the message says how to install them."""


def data_dir():
    """Where caches go: ``$MINIGRAD_DATA`` or ``~/.cache/minigrad``."""
    return os.environ.get("MINIGRAD_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "minigrad")
