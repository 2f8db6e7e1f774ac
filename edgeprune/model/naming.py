"""The one way edgeprune names a layer's weights: stable across copies and `.keras` save/load."""

import re

from keras import ops

_KERAS_AUTO_NAME = re.compile(r"variable(_\d+)?")


def relative_weight_name(layer, variable):
    """A variable's path inside `layer` ("kernel", "query/kernel"): stable across save/load.

    A variable created outside the layer's name scope (a layer built inside a Sequential's call)
    is named by its own name when no other weight of the layer shares it, else (a Bidirectional's
    copies) by its full path.
    """
    prefix = layer.path + "/"
    if variable.path.startswith(prefix):
        return variable.path[len(prefix):]
    if sum(w.name == variable.name for w in layer.weights) == 1:
        return variable.name
    return variable.path


def weight_key(layer, variable):
    """How edgeprune names one of `layer`'s weights, the same in a copy of the layer and after
    save/load: its path inside the layer, or "weights[i]", its position, for a weight Keras named
    itself (an `add_weight` without `name=` is "variable_18" here and "variable_36" in a copy)."""
    if _KERAS_AUTO_NAME.fullmatch(variable.name):
        return f"weights[{next(i for i, w in enumerate(layer.weights) if w is variable)}]"
    return relative_weight_name(layer, variable)


def weight_arrays(layer):
    """`{weight_key: numpy array}` of a layer's weights, in the layer's weight order."""
    return {weight_key(layer, w): ops.convert_to_numpy(w) for w in layer.weights}


def weight_by_key(layer, key):
    """The variable of `layer` that `weight_key` names `key`, or None."""
    return next((w for w in layer.weights if weight_key(layer, w) == key), None)
