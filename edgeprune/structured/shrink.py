"""`shrink`: rebuild a model without its all-zero coupled channels, as a smaller dense model."""

import keras
import numpy as np

from edgeprune.model.naming import weight_arrays
from edgeprune.model.rebuild import rebuild_resized
from edgeprune.sparsity.strip import stripped
from edgeprune.structured import layer_rules
from edgeprune.structured.graph import ChannelGraph
from edgeprune.structured.masked_norm import ChannelMaskedLayerNormalization


def shrink(model):
    """Returns a new, smaller model without the coupled channels whose weights are all zero.

    A coupled channel is removed when every weight it owns is zero: the producing filters and
    biases, BatchNormalization gamma and beta, depthwise filters and the input slices of the layers
    that read it (what `prune_channels` and `strip_pruning` of a `structure="channels"` model
    leave). Its consumers' weights are zero for it, so the smaller model computes the same outputs.
    Channels the graph marks unprunable (see `ChannelGraph.unprunable`) stay; each group keeps at
    least one channel. A model that still has pruning wrappers (`structure="channels"` during
    training) is stripped first. `model` is not changed. Compare the two with `shrink_report`.

    >>> import keras, edgeprune as ep
    >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3),
    ...                           keras.layers.Flatten(), keras.layers.Dense(10)])
    >>> small = ep.shrink(ep.prune_channels(model, sparsity=0.5))
    >>> small.layers[0].filters
    4
    """
    model = stripped(model)
    graph = ChannelGraph(model)
    keep = ~zero_channels(graph)
    slices = {}
    for s in graph.slices:
        slices.setdefault(id(s.layer), []).append(s)

    def config(layer):
        atoms = graph.resizable_atoms(layer)
        if atoms is None:
            return layer.get_config()
        return layer_rules.resized_config(layer, int(keep[atoms].sum()))

    def weights(layer):
        arrays = weight_arrays(layer)
        for s in slices.get(id(layer), []):
            arrays[s.weight] = np.compress(keep[s.atoms], arrays[s.weight], axis=s.axis)
        if isinstance(layer, ChannelMaskedLayerNormalization):
            del arrays["channel_mask"]  # only live channels remain: a plain LayerNormalization
        return list(arrays.values())

    def layer_class(layer):
        if isinstance(layer, ChannelMaskedLayerNormalization):
            return keras.layers.LayerNormalization
        return type(layer)

    return rebuild_resized(model, config, weights, layer_class)


def zero_channels(graph, weights=None):
    """Boolean array over atoms: prunable coupled channels whose zeroable weights are all zero.

    The first channel of a group that is all zero is kept, so no tensor loses all its channels.
    `weights` (`{id(layer): {name: array}}`) replaces the layers' current values.
    """
    values = weights if weights is not None else graph.weight_values()
    peak = np.zeros(graph.num_atoms)
    owned = np.zeros(graph.num_atoms, bool)
    for s in graph.slices:
        if s.zeroable:
            value = np.moveaxis(values[id(s.layer)][s.weight], s.axis, 0).reshape(len(s.atoms), -1)
            np.maximum.at(peak, s.atoms, np.abs(value).max(axis=1, initial=0.0))
            owned[s.atoms] = True
    zero = graph.prunable & owned & (peak == 0)
    for group in graph.groups:
        if zero[group.atoms].all():
            zero[group.atoms[0]] = False
    return zero
