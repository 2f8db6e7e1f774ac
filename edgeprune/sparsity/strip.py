"""`strip_pruning` and `sparsity_report`: from a pruned model to a plain, sparse Keras model."""

import keras
import numpy as np
from keras import ops

from edgeprune.sparsity import layer_registry
from edgeprune.model.naming import weight_key
from edgeprune.model.rebuild import copy_layer, rebuild
from edgeprune.sparsity.wrapper import PruneLowMagnitude, leaf_layers


def strip_pruning(model):
    """Returns a plain Keras model: no wrappers left, `weight * mask` baked into the weights.

    The result saves, loads and converts to TFLite like any Keras model. `model` is not changed.

    >>> final = ep.strip_pruning(pruned)  # doctest: +SKIP
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"strip_pruning takes a Keras model, got {type(model).__name__}.")
    return rebuild(model, _unwrap)


def stripped(model):
    """`strip_pruning(model)` when `model` has pruning wrappers, else `model` itself."""
    if isinstance(model, keras.Model) and any(isinstance(layer, PruneLowMagnitude)
                                              for layer in leaf_layers(model)):
        return strip_pruning(model)
    return model


def _unwrap(layer):
    if not isinstance(layer, PruneLowMagnitude):
        return copy_layer(layer)
    masked = {id(w): value for w, value in zip(layer.pruned_weights, layer.masked_weight_values())}
    weights = [masked[id(w)] if id(w) in masked else ops.convert_to_numpy(w)
               for w in layer.layer.weights]
    return copy_layer(layer.layer, weights)


def sparsity_report(model):
    """Per prunable weight: layer name, weight name, shape, sparsity, zeros and size.

    Works on pruned models (masks applied) and on plain models (zeros counted).

    >>> for row in ep.sparsity_report(final):  # doctest: +SKIP
    ...     print(row["layer"], row["weight"], row["sparsity"])
    """
    rows = []
    for layer in leaf_layers(model):
        if isinstance(layer, PruneLowMagnitude):
            named = zip(layer.pruned_weights, layer.masked_weight_values())
            owner = layer.layer
        else:
            try:
                weights = layer_registry.prunable_weights(layer, prune_depthwise=True)
            except ValueError:
                continue
            named = ((w, ops.convert_to_numpy(w)) for w in weights)
            owner = layer
        for weight, value in named:
            zeros = int(np.count_nonzero(value == 0))
            rows.append({"layer": owner.name, "weight": weight_key(owner, weight),
                         "shape": tuple(value.shape), "size": int(value.size), "zeros": zeros,
                         "sparsity": zeros / value.size if value.size else 0.0})
    return rows
