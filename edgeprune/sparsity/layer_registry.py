"""Which weights of which layer are prunable.

Mirrors tfmot's registry for Keras 3 layers. A custom layer opts in by defining
`get_prunable_weights()` (return `[]` to say "nothing to prune here"), as in tfmot.
"""

import keras

from edgeprune.model.keras_internals import attention_projections

L = keras.layers

# Kernels that carry the layer's multiply-accumulates.
_KERNEL_LAYERS = (L.Dense, L.EinsumDense, L.Conv1D, L.Conv2D, L.Conv3D, L.Conv1DTranspose,
                  L.Conv2DTranspose, L.Conv3DTranspose)
_DEPTHWISE_LAYERS = (L.DepthwiseConv1D, L.DepthwiseConv2D)
_SEPARABLE_LAYERS = (L.SeparableConv1D, L.SeparableConv2D)
# LSTM, GRU and SimpleRNN are RNN layers too; a generic RNN may run a StackedRNNCells.
_RNN_CELLS = (L.LSTMCell, L.GRUCell, L.SimpleRNNCell)
# Layers that hold weights which are not worth pruning (a few per channel).
_NOT_PRUNED = (L.BatchNormalization, L.LayerNormalization, L.GroupNormalization, L.PReLU,
               L.Normalization, getattr(L, "RMSNormalization", L.LayerNormalization))
_REGISTERED = (_KERNEL_LAYERS + _DEPTHWISE_LAYERS + _SEPARABLE_LAYERS + _NOT_PRUNED
               + (L.RNN, L.Embedding, L.MultiHeadAttention, L.Bidirectional, L.TimeDistributed))


class PrunableLayer:
    """tfmot's base class for a custom layer that says which of its weights to prune.

    Any layer with a `get_prunable_weights()` method is prunable; this class only lets tfmot
    code (`class MyDense(keras.layers.Dense, PrunableLayer)`) run unchanged, and says what to
    implement.
    """

    def get_prunable_weights(self):
        raise NotImplementedError(f"{type(self).__name__} subclasses PrunableLayer: implement "
                                  "get_prunable_weights() to return the weights to prune.")


def prunable_weights(layer, prune_depthwise=False):
    """Returns the variables of `layer` that pruning masks, or raises a ValueError.

    Depthwise kernels are only pruned with `prune_depthwise=True` (tfmot never prunes them: a
    depthwise filter has few weights and each one matters).

    >>> prunable_weights(keras.layers.Dense(4, input_shape=(3,)))  # doctest: +SKIP
    [<Variable path=dense/kernel, shape=(3, 4), dtype=float32>]
    """
    if hasattr(layer, "get_prunable_weights"):
        return list(layer.get_prunable_weights())
    if isinstance(layer, _KERNEL_LAYERS):
        return [layer.kernel]
    if isinstance(layer, _SEPARABLE_LAYERS):
        return [layer.pointwise_kernel]
    if isinstance(layer, _DEPTHWISE_LAYERS):
        return [layer.kernel] if prune_depthwise else []
    if isinstance(layer, L.Embedding):
        return [layer.embeddings]
    if isinstance(layer, L.MultiHeadAttention):
        return [sub.kernel for sub in attention_projections(layer)]
    if isinstance(layer, L.RNN):
        return [weight for cell in _cells(layer) for weight in _cell_weights(layer, cell)]
    if isinstance(layer, L.Bidirectional):
        return (prunable_weights(layer.forward_layer, prune_depthwise)
                + prunable_weights(layer.backward_layer, prune_depthwise))
    if isinstance(layer, L.TimeDistributed):
        return prunable_weights(layer.layer, prune_depthwise)
    if isinstance(layer, _NOT_PRUNED) or not layer.weights:
        return []
    raise ValueError(
        f"Layer '{layer.name}' ({type(layer).__name__}) holds weights, but edgeprune does not "
        "know which of them to prune. Either give the layer a `get_prunable_weights()` method "
        "that returns the weights to prune (an empty list to prune none), or leave it unwrapped: "
        f"pass `skip_layers=['{layer.name}']` to prune_low_magnitude, or prune only the layers "
        "you choose.")


def _cells(rnn):
    return list(rnn.cell.cells) if isinstance(rnn.cell, L.StackedRNNCells) else [rnn.cell]


def _cell_weights(rnn, cell):
    """The kernel and recurrent kernel of a built-in cell (tfmot's choice), or what a custom
    cell's `get_prunable_weights()` returns."""
    if hasattr(cell, "get_prunable_weights"):
        return list(cell.get_prunable_weights())
    if isinstance(cell, _RNN_CELLS):
        return [cell.kernel, cell.recurrent_kernel]
    raise ValueError(
        f"Layer '{rnn.name}' runs the cell '{cell.name}' ({type(cell).__name__}), and edgeprune "
        "does not know which of its weights to prune. Either give the cell a "
        "`get_prunable_weights()` method that returns them (an empty list to prune none), or "
        f"leave the layer unwrapped: pass `skip_layers=['{rnn.name}']` to prune_low_magnitude.")


def is_registered(layer):
    """True for layers whose prunable weights the registry decides as a whole (an LSTM, an
    attention layer), as opposed to containers whose sublayers are visited one by one."""
    return hasattr(layer, "get_prunable_weights") or isinstance(layer, _REGISTERED)


def is_prunable(layer, prune_depthwise=False):
    """True when `layer` has at least one weight to prune (raises for unknown weighted layers).

    A layer not built yet (in a Sequential model without an Input) has no weights to look at:
    every layer but the kinds never pruned is then wrapped, and its wrapper decides when the
    first batch builds it (a layer without weights passes through, an unknown weighted layer
    raises), as tfmot's wrapper does.
    """
    if not layer.built:
        return not isinstance(layer, _NOT_PRUNED) and (
            prune_depthwise or not isinstance(layer, _DEPTHWISE_LAYERS))
    return bool(prunable_weights(layer, prune_depthwise))


def reduction_axis(weight_rank):
    """The axis along which N:M groups run: TFLite's innermost (input-channel) axis.

    A Keras Conv2D kernel [H, W, Cin, Cout] is stored by TFLite as [Cout, H, W, Cin], and a Dense
    kernel [in, out] as [out, in]: both put Keras axis -2 innermost.
    """
    return -2 if weight_rank >= 2 else -1
