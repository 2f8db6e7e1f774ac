"""One-shot channel pruning of a trained model: score, select, and zero whole coupled channels."""

import keras
import numpy as np

from edgeprune.autodiff import gradient_function
from edgeprune.model.naming import weight_arrays, weight_key
from edgeprune.model.rebuild import copy_layer, rebuild
from edgeprune.structured.criteria import channel_scores, get_criterion, gradient_terms
from edgeprune.structured.graph import ChannelGraph
from edgeprune.structured.masked_norm import with_maskable_norms
from edgeprune.structured.selection import channel_masks, check_selection, select_channels
from edgeprune.sparsity.wrapper import apply_mask


def prune_channels(model, sparsity, criterion="l1", pruning_scope="layer", round_to=1,
                   min_channels=1, skip_layers=(), data=None, loss=None):
    """Returns a new model with the least important coupled channels zeroed; `model` is untouched.

    Every weight of a removed channel is zeroed: producing filters and biases, BatchNormalization
    gamma and beta, depthwise filters, and the input slices of the layers that read it. The result
    computes exactly what `shrink` of it computes; shrink it, then fine-tune the smaller model.

    Args:
        model: a Functional or Sequential model.
        sparsity: fraction of channels to remove, in [0, 1).
        criterion: "l1", "l2", "bn_gamma" or "taylor" (see `channel_scores`).
        pruning_scope: "layer" (each group loses `sparsity` of its channels) or "global" (see
            `select_channels`).
        round_to: kept channel counts are rounded up to a multiple of this.
        min_channels: fewest channels any group keeps.
        skip_layers: names of layers whose output channels are kept.
        data: for the "taylor" criterion, one `(x, y)` batch, or an iterable of `(x, y)` batches
            (a batched `tf.data.Dataset`, a list): each batch's terms are squared, then summed.
        loss: loss for the "taylor" criterion (a name or a callable `loss(y_true, y_pred)`).

    >>> import keras, numpy as np, edgeprune as ep
    >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3),
    ...                           keras.layers.Flatten(), keras.layers.Dense(10)])
    >>> pruned = ep.prune_channels(model, sparsity=0.5)
    >>> int((np.abs(pruned.layers[0].get_weights()[0]).sum(axis=(0, 1, 2)) == 0).sum())
    4
    """
    criterion = get_criterion(criterion)
    check_selection(sparsity, pruning_scope, round_to, min_channels)
    model = with_maskable_norms(model)
    graph = ChannelGraph(model, skip_layers=skip_layers)
    if criterion.needs_gradients:
        scores = criterion.scores_from_terms(graph, data_gradient_terms(graph, criterion, data,
                                                                        loss))
    else:
        scores = channel_scores(graph, criterion)
    remove = select_channels(graph, scores, sparsity, pruning_scope, round_to, min_channels)
    masks = channel_masks(graph, remove)
    return rebuild(model, lambda layer: copy_layer(layer, _masked_weights(layer, masks.get(
        id(layer), {}))))


def data_gradient_terms(graph, criterion, data, loss):
    """A gradient criterion's terms (see `gradient_terms`) summed over the batches of `data`."""
    if data is None or loss is None:
        raise ValueError(f"criterion={criterion.name!r} needs data=(x, y) (or an iterable of "
                         "(x, y) batches) and a loss to compute gradients.")
    layers = {id(s.layer): s.layer for s in graph.slices}
    variables = [(key, w) for key, layer in layers.items() for w in layer.trainable_weights]
    loss_gradients = gradient_function(graph.model, [w for _, w in variables], loss)
    values = graph.weight_values()
    total, batches = {}, 0
    for batch in [data] if isinstance(data, tuple) else data:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(f"criterion={criterion.name!r} got a {type(batch).__name__} as a "
                             "batch of data. "
                             "Pass one batch as a tuple (x, y), or an iterable of such tuples.")
        gradients = {key: {} for key in layers}
        # As NumPy: a tf.data batch holds TensorFlow tensors, which JAX and PyTorch do not take.
        x, y = keras.tree.map_structure(np.asarray, tuple(batch))
        for (key, w), gradient in zip(variables, loss_gradients(x, y)):
            gradients[key][weight_key(layers[key], w)] = gradient
        for key, value in gradient_terms(graph, criterion, values, gradients).items():
            total[key] = total.get(key, 0.0) + value
        batches += 1
    if not batches:
        raise ValueError(f"criterion={criterion.name!r} got data with no batches.")
    return total


def _masked_weights(layer, masks):
    return [apply_mask(value, masks[name]) if name in masks else value
            for name, value in weight_arrays(layer).items()]
