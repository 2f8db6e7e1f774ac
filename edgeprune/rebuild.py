"""Copying a model while replacing its layers: the one mechanism behind prune and strip.

Sequential and functional models (nested ones and shared layers included) are rebuilt with
`keras.models.clone_model(recursive=True)`; subclassed models are re-created from their config and
their layer attributes replaced before they are built. Every layer is a copy with copied weights,
so the source model is never touched.
"""

import contextlib

import keras
from keras.src.models.functional import Functional  # the class clone_model itself dispatches on


def rebuild(model, transform):
    """Returns a copy of `model` in which each layer L (at any depth) becomes `transform(L)`.

    `transform` must return a new layer, typically built from `copy_layer(L)`.
    """
    def replace(layer):
        if not isinstance(layer, keras.layers.Layer):
            return layer  # a stateless keras.ops operation: nothing to copy
        return transform(layer)

    if isinstance(model, (keras.Sequential, Functional)):
        with _compile_config_hidden(model):
            return keras.models.clone_model(model, clone_function=replace, recursive=True)
    return _rebuild_subclassed(model, replace)


@contextlib.contextmanager
def _compile_config_hidden(model):
    """clone_model recompiles copies of compiled models from their compile config, which fails
    for a lambda loss and would share nothing useful anyway: copies come back uncompiled. The
    flag is restored on exit, so the caller's model is left as it was."""
    compiled = [m for m in model._flatten_layers(include_self=True)
                if isinstance(m, keras.Model) and m.compiled]
    for m in compiled:
        m.compiled = False
    try:
        yield
    finally:
        for m in compiled:
            m.compiled = True


def leaf_layers(model):
    """Every layer inside `model` that pruning treats as one unit, each once, in order.

    Nested models and container layers are walked into; a pruning wrapper, and a layer the
    registry knows as a whole (an LSTM with its cell, a Bidirectional), count as leaves.
    """
    from edgeprune.registry import is_registered
    from edgeprune.wrapper import PruneLowMagnitude

    seen = set()

    def visit(layer):
        for sub in layer._layers:
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            if sub._layers and not isinstance(sub, PruneLowMagnitude) and not is_registered(sub):
                yield from visit(sub)
            else:
                yield sub

    yield from visit(model)


def copy_layer(layer, weights=None):
    """A new layer of the same class and config, built like `layer`, holding a copy of its
    weights (or `weights` when given)."""
    copy = layer.__class__.from_config(layer.get_config())
    if layer.built:
        copy.build_from_config(layer.get_build_config())
        copy.set_weights(layer.get_weights() if weights is None else weights)
    return copy


def _rebuild_subclassed(model, replace):
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built: call it on a batch of data (or "
                         "model.build(input_shape)) before pruning, so its weights exist.")
    try:
        copy = model.__class__.from_config(model.get_config())
    except Exception as error:
        raise ValueError(
            f"Cannot re-create the subclassed model '{model.name}' ({type(model).__name__}) from "
            "its config, which edgeprune needs to return a new model without touching yours. "
            "Give the class a get_config() returning its __init__ arguments (Keras' default "
            f"works when they are plain values). Cause: {error}") from None
    _replace_sublayers(copy, model, replace)
    copy.build_from_config(model.get_build_config())
    return copy


def _replace_sublayers(copy, source, replace):
    """Walks attributes of `copy` (unbuilt) and `source` in parallel, replacing leaf layers."""
    for name, value in list(vars(copy).items()):
        if name.startswith("_"):
            continue
        original = getattr(source, name, None)
        if isinstance(value, keras.layers.Layer) and isinstance(original, keras.layers.Layer):
            new = _replace_one(value, original, replace)
            if new is not value:
                copy._tracker.untrack(value)
                setattr(copy, name, new)
        elif isinstance(value, list) and isinstance(original, (list, tuple)):
            for index, (item, item_original) in enumerate(zip(list(value), original)):
                if isinstance(item, keras.layers.Layer):
                    new = _replace_one(item, item_original, replace)
                    if new is not item:
                        value.pop(index)
                        value.insert(index, new)


def _replace_one(copy, original, replace):
    # A container layer (sublayers but no weights of its own) is walked into, a leaf replaced.
    own_weights = [w for w in original.weights if not any(
        w is sw for sub in original._layers for sw in sub.weights)]
    if original._layers and not own_weights and not hasattr(original, "get_prunable_weights"):
        _replace_sublayers(copy, original, replace)
        return copy
    return replace(original)
