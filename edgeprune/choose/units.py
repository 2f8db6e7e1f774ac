"""What a sensitivity scan prunes one at a time: a layer's prunable weights (any granularity with
`layer_masks`) or one coupled channel group; and the cost terms each unit's pruning shrinks."""

import numpy as np
from keras import ops

from edgeprune.model.cost import weight_macs
from edgeprune.model.naming import weight_by_key
from edgeprune.sparsity import layer_registry
from edgeprune.sparsity.wrapper import leaf_layers
from edgeprune.structured import ChannelGraph, channel_masks, channel_scores, select_channels


def prunable_layers(model, names=None):
    """The leaf layers of `model` that have weights to prune, in model order (or those named)."""
    candidates = [layer for layer in leaf_layers(model) if layer.weights]
    if names is None:
        return [layer for layer in candidates if layer_registry.is_prunable(layer)]
    by_name = {layer.name: layer for layer in candidates}
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise ValueError(f"layers names layers with no prunable weights or not in the model: "
                         f"{unknown}; its layers with weights are {sorted(by_name)}.")
    chosen = [by_name[name] for name in names]
    for layer in chosen:
        if not layer_registry.prunable_weights(layer, prune_depthwise=True):
            raise ValueError(f"layers: '{layer.name}' has no prunable weight.")
    return chosen


class LayerUnit:
    """A layer's prunable weights, pruned by a granularity's `layer_masks` (e.g. magnitude)."""

    def __init__(self, layer, granularity, options):
        self.name = layer.name
        self.weights = layer_registry.prunable_weights(layer, prune_depthwise=True)
        self.granularity, self.options = granularity, options
        self.size = sum(int(np.prod(w.shape)) for w in self.weights)
        self.macs = sum(weight_macs(layer, w) for w in self.weights)

    def values(self):
        return [ops.convert_to_numpy(w) for w in self.weights]

    def prune(self, sparsity):
        values = self.values()
        results = self.granularity.layer_masks(values, sparsity, self.options)
        for weight, value, (mask, _) in zip(self.weights, values, results):
            weight.assign(value * mask.astype(value.dtype))

    def restore(self, values):
        for weight, value in zip(self.weights, values):
            weight.assign(value)


def unstructured_term(unit, size, macs):
    """The cost term of `size` weights that unstructured pruning of `unit` removes one by one."""
    return {"params": size, "macs": macs, "slices": [{"length": 1, "counts": {unit: 1}}]}


def cost_terms(units):
    """The `SensitivityTable.terms` of scanned units (see there)."""
    if units and isinstance(units[0], ChannelUnit):
        return channel_terms(units[0].graph, [unit.name for unit in units])
    return [unstructured_term(unit.name, unit.size, unit.macs) for unit in units]


def layer_units(model, names, granularity, options):
    return [LayerUnit(layer, granularity, options) for layer in prunable_layers(model, names)]


class ChannelUnit:
    """One coupled channel group of a `ChannelGraph`: its lowest-scoring channels are zeroed, as
    gradual and one-shot channel pruning choose them (`select_channels`)."""

    def __init__(self, graph, group, scores, round_to=1, min_channels=1):
        self.name = group.name
        self.size = len(group)
        self.graph, self._scores = graph, scores
        self._round_to, self._min_channels = round_to, min_channels
        self._in_group = np.zeros(graph.num_atoms, bool)
        self._in_group[group.atoms] = True
        self._variables = {(id(s.layer), s.weight): weight_by_key(s.layer, s.weight)
                           for s in graph.slices if s.zeroable}

    def values(self):
        return {key: ops.convert_to_numpy(v) for key, v in self._variables.items()}

    def prune(self, sparsity):
        remove = self._in_group & select_channels(self.graph, self._scores, sparsity,
                                                  round_to=self._round_to,
                                                  min_channels=self._min_channels)
        for layer_id, masks in channel_masks(self.graph, remove).items():
            for name, mask in masks.items():
                variable = self._variables[(layer_id, name)]
                variable.assign(ops.convert_to_numpy(variable) * mask)

    def restore(self, values):
        for key, value in values.items():
            self._variables[key].assign(value)


def channel_units(model, names=None, criterion="l1", round_to=1, min_channels=1, skip_layers=(),
                  pruning_scope="layer"):
    """One unit per channel group of `model` (or per group named). `round_to` is one number or
    `{group: number}` (1 for groups it does not name). `pruning_scope` is accepted for the
    "channels" options' sake: a scan prunes one group at a time."""
    graph = ChannelGraph(model, skip_layers=skip_layers)
    scores = channel_scores(graph, criterion)
    groups = {group.name: group for group in graph.groups}
    if names is not None:
        unknown = sorted(set(names) - set(groups))
        if unknown:
            raise ValueError(f"layers names channel groups the model does not have: {unknown}; "
                             f"its groups are {sorted(groups)}.")
        groups = {name: groups[name] for name in names}
    step = round_to.get if isinstance(round_to, dict) else lambda name, default: round_to
    return [ChannelUnit(graph, group, scores, step(name, 1), min_channels)
            for name, group in groups.items()]


def channel_terms(graph, group_names):
    """Cost terms of every weight a channel group slices (producer, consumers, BN statistics)."""
    owner = np.full(graph.num_atoms, -1)
    names = [group.name for group in graph.groups]
    for index, group in enumerate(graph.groups):
        if group.name in group_names:
            owner[group.atoms] = index
    by_weight = {}
    for s in graph.slices:
        if s.role == "mask":  # exists only while pruning: shrink drops it
            continue
        owners, counts = np.unique(owner[s.atoms], return_counts=True)
        piece = {"length": len(s.atoms),
                 "counts": {names[o]: int(c) for o, c in zip(owners, counts) if o >= 0}}
        if piece["counts"]:
            by_weight.setdefault((s.layer, s.weight), []).append(piece)
    terms = []
    for (layer, weight_name), pieces in by_weight.items():
        variable = weight_by_key(layer, weight_name)
        terms.append({"params": int(np.prod(variable.shape)),
                      "macs": weight_macs(layer, variable), "slices": pieces})
    return terms
