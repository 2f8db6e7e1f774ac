"""Copying a model while replacing layers, the one weight-naming scheme, the cost model, and
the one module that touches private Keras API. Used by every other package; imports none."""
