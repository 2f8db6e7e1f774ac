"""Rebuilding a model with resized layers: new configs first, weights once the graph is built."""

import keras

from edgeprune import rebuild as core


def rebuild(model, layer_config, layer_weights, layer_class=type):
    """Returns a new model with the same graph as `model`, nested models included.

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

    new_model = core.rebuild(model, resized)
    for layer, new_layer in pairs:
        if new_layer.weights:
            new_layer.set_weights(layer_weights(layer))
    return new_model


def weight_arrays(layer):
    """`{weight name: numpy array}` of a layer's weights."""
    return {w.name: keras.ops.convert_to_numpy(w) for w in layer.weights}
