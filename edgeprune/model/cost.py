"""The one cost model: parameters, multiply-accumulates and weight bytes of layers and models.

MACs are counted for the weights that multiply activations, the kernels (`kernel`,
`depthwise_kernel`, `pointwise_kernel`, `recurrent_kernel`): each is used once per position of
one call's output (of its input, for a transposed convolution, which scatters each input position
through the whole kernel). Biases, normalization and embedding lookups cost no MACs.
"""

import keras
import numpy as np

from edgeprune.model.keras_internals import all_sublayers, inbound_nodes

_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
               keras.layers.Conv3DTranspose)


def is_mac_weight(variable):
    """Whether `variable` is a kernel, whose every value costs one MAC per position."""
    return variable.name.endswith("kernel")


def positions(layer):
    """How often one call of `layer` applies each kernel value: the spatial positions of its
    output (input, for a transposed convolution); the largest call counts once. A layer never
    called in a graph (inside a subclassed model) counts 1."""
    transposed = isinstance(layer, _TRANSPOSED)
    shapes = [tensor.shape for node in inbound_nodes(layer)
              for tensor in (node.input_tensors if transposed else node.output_tensors)]
    return max([int(np.prod(shape[1:-1])) for shape in shapes] + [1])


def weight_macs(layer, variable):
    """MACs that `variable` of `layer` carries in one call (0 for a non-kernel weight)."""
    return int(np.prod(variable.shape)) * positions(layer) if is_mac_weight(variable) else 0


def layer_macs(layer):
    """Dense MACs of one call of `layer` (a leaf layer: its own weights, sublayers' included)."""
    return sum(weight_macs(layer, w) for w in layer.weights)


def model_macs(layers):
    """Dense MACs of a model, given its leaf layers (each counted once)."""
    return sum(layer_macs(layer) for layer in layers)


def deployed_params(layer):
    """`layer.count_params()` (of a layer or a whole model) without the weights that exist only
    while pruning (a layer names them in `not_deployed_weights`, e.g. channel masks), which
    deployment drops."""
    pruning_only = {id(getattr(sub, name)) for sub in (layer, *all_sublayers(layer))
                    for name in getattr(sub, "not_deployed_weights", ())}
    return layer.count_params() - sum(int(np.prod(w.shape)) for w in layer.weights
                                      if id(w) in pruning_only)
