"""The environment of the Python processes edgeprune starts (the TensorFlow converter for JAX and
PyTorch models, the LiteRT runner for files converted elsewhere, a recipe on another backend): the
parent's, with this copy of edgeprune first on `PYTHONPATH`, so that a child imports the same code
even when it runs from a source checkout that pip never installed."""

import os

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_environment(**overrides):
    """`os.environ` with edgeprune importable and `overrides` set (e.g. KERAS_BACKEND)."""
    path = os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **overrides}
