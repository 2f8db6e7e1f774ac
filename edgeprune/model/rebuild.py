"""Copying a model while replacing its layers: the one mechanism behind prune, strip, QAT and
shrink.

Sequential and functional models (nested ones and shared layers included) are rebuilt node by
node; a nested model is rebuilt on the tensors that actually reach it, so a copy whose layers
changed width still fits. A Sequential model without an Input (built by its first batch) becomes
a Sequential of the transformed layers, built the same way. Subclassed models are re-created
from their config and their layer attributes replaced before they are built. The source model is
never touched, and copies come back uncompiled.
"""

import inspect

import keras
from keras import tree

from edgeprune.model import keras_internals as internals
from edgeprune.model.keras_internals import is_graph_model


def rebuild(model, transform):
    """Returns a copy of `model` in which each layer L (at any depth) becomes `transform(L)`.

    `transform` returns the new layer: typically `copy_layer(L)` (built, weights copied), a
    wrapper around it, or a layer from a changed config whose weights the caller sets once the
    copy is built. A layer shared by several nodes is transformed once and stays shared.
    """
    if isinstance(model, keras.Sequential) and internals.sequential_functional(model) is None:
        return keras.Sequential([transform(layer) for layer in model.layers], name=model.name)
    if is_graph_model(model):
        return _GraphCloner(transform).rebuild_model(model, model.inputs)
    return _rebuild_subclassed(model, transform)


class _GraphCloner:
    def __init__(self, transform):
        self._transform = transform
        self._cache = {}

    def clone(self, operation):
        """The new layer for `operation`; nested models wait for their inputs (see `call`)."""
        if is_graph_model(operation) or not isinstance(operation, keras.layers.Layer):
            return operation  # stateless keras.ops operations are reused as they are
        if id(operation) not in self._cache:
            self._cache[id(operation)] = self._transform(operation)
        return self._cache[id(operation)]

    def call(self, operation, *args, **kwargs):
        if is_graph_model(operation):
            key = ("model", id(operation))
            if key not in self._cache:
                self._cache[key] = self.rebuild_model(operation, tree.flatten(args))
            operation = self._cache[key]
        return operation(*args, **kwargs)

    def rebuild_model(self, model, example_inputs):
        # Named after the input layers (not their tensors): the copy's config names them alike.
        inputs = [keras.Input(batch_shape=x.shape, dtype=x.dtype,
                              name=internals.producer(original).name)
                  for x, original in zip(example_inputs, functional_graph(model).inputs)]
        if isinstance(model, keras.Sequential):
            outputs = inputs[0]
            for layer in model.layers:
                outputs = self.call(self.clone(layer), outputs)
            new_layers = [self._cache.get(("model", id(layer))) or self.clone(layer)
                          for layer in model.layers]
            return keras.Sequential([inputs[0], *new_layers], name=model.name)
        outputs = internals.run_through_graph(model, inputs, self.clone, self.call)
        return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=model.name)


def functional_graph(model):
    """The functional graph of a functional model, or of a built Sequential one."""
    if isinstance(model, keras.Sequential):
        functional = internals.sequential_functional(model)
        if functional is None:
            raise ValueError(f"Sequential model '{model.name}' is not built: give it a "
                             "keras.Input(shape) first, or call it on a batch of data.")
        return functional
    return model


def leaf_layers(model, is_leaf=lambda layer: False):
    """Every layer inside `model` that is one unit, each once, in order.

    Nested models and container layers are walked into; a layer for which `is_leaf(layer)` is
    true (a pruning wrapper, a layer pruned as a whole such as an LSTM with its cell) is not.
    """
    seen = set()

    def visit(layer):
        for sub in internals.sublayers(layer):
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            if internals.sublayers(sub) and not is_leaf(sub):
                yield from visit(sub)
            else:
                yield sub

    yield from visit(model)


def copy_layer(layer, weights=None):
    """A new layer of the same class and config, built like `layer`, holding a copy of its
    weights (or `weights` when given)."""
    copy = recreate(layer)
    if layer.built:
        copy.build_from_config(layer.get_build_config())
        copy.set_weights(layer.get_weights() if weights is None else weights)
    return copy


# What Keras' base Layer.__init__ takes and every layer's config holds.
_BASE_LAYER_ARGUMENTS = ("name", "trainable", "dtype")


def recreate(layer):
    """A new, unbuilt layer of `layer`'s class and config: `from_config(get_config())`.

    A custom layer whose `__init__` takes neither `**kwargs` nor the base Layer arguments still
    lists them in its config, which `from_config` would pass on (a TypeError); it is created
    from the arguments its `__init__` takes and given `layer`'s name, trainable flag and dtype
    policy afterwards. Any other config key its `__init__` does not take raises a ValueError
    that names the layer.
    """
    cls = layer.__class__
    config = layer.get_config()
    parameters = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return cls.from_config(config)
    taken = {p.name for p in parameters}
    unknown = sorted(set(config) - taken - set(_BASE_LAYER_ARGUMENTS))
    if unknown:
        raise ValueError(
            f"Cannot copy layer '{layer.name}' ({cls.__name__}): its get_config() holds "
            f"{unknown}, which {cls.__name__}.__init__ does not take. Make get_config() return "
            "the __init__ arguments (and let __init__ take **kwargs for Keras' own).")
    copy = cls.from_config({key: value for key, value in config.items() if key in taken})
    copy.name = layer.name
    copy.trainable = layer.trainable
    copy.dtype_policy = layer.dtype_policy
    return copy


def _rebuild_subclassed(model, replace):
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built: call it on a batch of data (or "
                         "model.build(input_shape)) before pruning, so its weights exist.")
    try:
        copy = recreate(model)
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
    for name, value in list(internals.attributes(copy).items()):
        if name.startswith("_"):
            continue
        original = getattr(source, name, None)
        if isinstance(value, keras.layers.Layer) and isinstance(original, keras.layers.Layer):
            new = _replace_one(value, original, replace)
            if new is not value:
                internals.untrack(copy, value)
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
    children = internals.sublayers(original)
    own_weights = [w for w in original.weights if not any(
        w is sw for sub in children for sw in sub.weights)]
    if children and not own_weights and not hasattr(original, "get_prunable_weights"):
        _replace_sublayers(copy, original, replace)
        return copy
    return replace(original)


def rebuild_resized(model, layer_config, layer_weights, layer_class=type):
    """A copy of `model` whose layers are re-created from changed configs (other widths), their
    weights set once the whole graph is built.

    Args:
        model: a Functional or Sequential model.
        layer_config: `f(layer) -> config` used to create each new layer.
        layer_weights: `f(layer) -> list of arrays` set on each new layer.
        layer_class: `f(layer) -> class` of each new layer (default: the same class).
    """
    pairs = []

    def resized(layer):
        new_layer = layer_class(layer).from_config(layer_config(layer))
        pairs.append((layer, new_layer))
        return new_layer

    new_model = rebuild(model, resized)
    for layer, new_layer in pairs:
        if new_layer.weights:
            new_layer.set_weights(layer_weights(layer))
    return new_model
