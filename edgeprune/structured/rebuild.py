"""Clone a model layer by layer, changing configs and weights on the way; the input is untouched.

`keras.models.clone_model` rebuilds nested models with their original input shapes, which no longer
fit once an outer layer has fewer channels, so nested models are rebuilt here on the tensors that
actually reach them.
"""

import keras
from keras import tree
from keras.src.models.functional import Functional


def rebuild(model, layer_config, layer_weights):
    """Returns a new model with the same graph as `model`, nested models included.

    Args:
        model: a Functional or Sequential model.
        layer_config: `f(layer) -> config` used to create each new layer.
        layer_weights: `f(layer) -> list of arrays` set on each new layer.
    """
    cloner = _Cloner(layer_config)
    new_model = cloner.rebuild_model(model, model.inputs)
    for layer, new_layer in cloner.layers:
        if new_layer.weights:
            new_layer.set_weights(layer_weights(layer))
    return new_model


def weight_arrays(layer):
    """`{weight name: numpy array}` of a layer's weights."""
    return {w.name: keras.ops.convert_to_numpy(w) for w in layer.weights}


def is_graph_model(operation):
    return isinstance(operation, (Functional, keras.Sequential))


class _Cloner:
    def __init__(self, layer_config):
        self._layer_config = layer_config
        self._cache = {}
        self.layers = []  # (original, clone) pairs of layers with their own config

    def clone(self, operation):
        """A new layer from its (possibly changed) config; models wait for their inputs."""
        if is_graph_model(operation) or not isinstance(operation, keras.layers.Layer):
            return operation  # stateless ops are reused; models are rebuilt in call()
        if id(operation) not in self._cache:
            new_layer = operation.__class__.from_config(self._layer_config(operation))
            self._cache[id(operation)] = new_layer
            self.layers.append((operation, new_layer))
        return self._cache[id(operation)]

    def call(self, operation, *args, **kwargs):
        if is_graph_model(operation):
            key = ("model", id(operation))
            if key not in self._cache:
                self._cache[key] = self.rebuild_model(operation, tree.flatten(args))
            operation = self._cache[key]
        return operation(*args, **kwargs)

    def rebuild_model(self, model, example_inputs):
        inputs = [keras.Input(batch_shape=x.shape, dtype=x.dtype, name=original.name)
                  for x, original in zip(example_inputs, _graph_inputs(model))]
        if isinstance(model, keras.Sequential):
            outputs = inputs[0]
            for layer in model.layers:
                outputs = self.call(self.clone(layer), outputs)
            new_layers = [self._cache.get(("model", id(layer))) or self.clone(layer)
                          for layer in model.layers]
            return keras.Sequential([inputs[0], *new_layers], name=model.name)
        outputs = model._run_through_graph(inputs, operation_fn=self.clone, call_fn=self.call)
        return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=model.name)


def _graph_inputs(model):
    return model._functional.inputs if isinstance(model, keras.Sequential) else model.inputs
