"""Other processes, as edgeprune starts them and looks for them.

The Python children edgeprune starts (the TensorFlow converter for JAX and PyTorch models, the
LiteRT runner for files converted elsewhere, a recipe on another backend) get the parent's
environment with this copy of edgeprune first on `PYTHONPATH`, so that they import the same code
even from a source checkout that pip never installed. Files that name their owner's pid (a run
folder's lock, scratch folders) are left alone while that process lives."""

import os

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_environment(**overrides):
    """`os.environ` with edgeprune importable and `overrides` set (e.g. KERAS_BACKEND)."""
    path = os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **overrides}


def is_alive(pid):
    """Whether process `pid` exists; True when that cannot be told (another user's process, a
    number no process can have), so that a file naming it is left alone."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
