"""Clone a model layer by layer, changing configs and weights on the way; the input is untouched."""

import keras


def rebuild(model, layer_config, layer_weights):
    """Returns a new model with the same graph as `model`, nested models included.

    Args:
        model: a Functional or Sequential model.
        layer_config: `f(layer) -> config` used to create each new layer.
        layer_weights: `f(layer) -> list of arrays` set on each new layer (same order as
            `layer.get_weights()` of the new layer).
    """
    clones = []

    def clone_layer(layer):
        new_layer = layer.__class__.from_config(layer_config(layer))
        clones.append((layer, new_layer))
        return new_layer

    new_model = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
    for layer, new_layer in clones:
        if layer.weights:
            new_layer.set_weights(layer_weights(layer))
    return new_model


def weight_arrays(layer):
    """`{weight name: numpy array}` of a layer's weights."""
    return {w.name: keras.ops.convert_to_numpy(w) for w in layer.weights}
