"""Gradual channel pruning during training: `prune_low_magnitude(..., structure="channels")`.

Every layer owning a weight slice of a prunable coupled channel is wrapped in `PruneLowMagnitude`
with masks on exactly those weights (filters, biases, BN gamma/beta, depthwise filters, consumer
input slices). At each pruning step the `PruningController` hands the channel wrappers to a
`ChannelMasker`, which rebuilds the channel graph from the wrapped model itself (so a model loaded
from `.keras` mid-training resumes without extra state), scores the masked weights group by group
(or, for "taylor", the first-order terms the wrappers accumulated on the training batches) and
zeroes whole coupled channels, so the model trains as the shrunk model will run.
"""

import warnings

import numpy as np
from keras import ops

from edgeprune.rebuild import copy_layer, rebuild
from edgeprune.structured.criteria import channel_scores, check_criterion, taylor_scores
from edgeprune.structured.graph import ChannelGraph
from edgeprune.structured.masked_norm import with_maskable_norms
from edgeprune.structured.oneshot import channel_masks
from edgeprune.structured.selection import check_selection, select_channels
from edgeprune.wrapper import PruneLowMagnitude, apply_mask, relative_weight_name, weight_key


def wrap_for_channels(model, pruning_schedule, criterion="l1", pruning_scope="layer", round_to=1,
                      min_channels=1, skip_layers=()):
    """A copy of `model` whose channel-owning layers are wrapped for gradual channel pruning.

    The schedule's sparsity is the fraction of channels removed, per group ("layer") or
    over all prunable channels ("global"); see `select_channels` for the other options.
    """
    check_criterion(criterion)
    check_selection(0.0, pruning_scope, round_to, min_channels)
    model = with_maskable_norms(model)
    options = {"criterion": criterion, "pruning_scope": pruning_scope, "round_to": int(round_to),
               "min_channels": int(min_channels), "skip_layers": list(skip_layers)}
    graph = ChannelGraph(model, skip_layers=skip_layers)
    masked_weights, taylor_axes = {}, {}
    for s in graph.slices:
        if s.zeroable and graph.prunable[s.atoms].any():
            names = masked_weights.setdefault(id(s.layer), [])
            if s.weight not in names:
                names.append(s.weight)
            if s.scored:
                taylor_axes.setdefault(id(s.layer), {}).setdefault(s.weight, []).append(s.axis)
    if not masked_weights:
        raise ValueError(f"Model '{model.name}' has no prunable channel: "
                         f"{graph.summary()}")

    def transform(layer):
        copy = copy_layer(layer)
        names = masked_weights.get(id(layer))
        if names is None:
            return copy
        key = {w.name: weight_key(layer, w) for w in layer.weights}  # the graph's names are w.name
        axes = {key[name]: axes for name, axes in taylor_axes.get(id(layer), {}).items()}
        return PruneLowMagnitude(
            copy, pruning_schedule=pruning_schedule, weight_names=[key[n] for n in names],
            channel_pruning=options, taylor_axes=axes if criterion == "taylor" else None)

    return rebuild(model, transform)


class ChannelMasker:
    """Computes channel masks for the `structure="channels"` wrappers of one model."""

    def __init__(self, model, options):
        self.options = dict(options)
        self.graph = ChannelGraph(model, skip_layers=self.options.pop("skip_layers", ()))

    def update(self, wrappers, sparsity):
        """Zeroes the lowest-scoring coupled channels so that `sparsity` of them are removed."""
        scores = self.scores(wrappers)
        remove = select_channels(self.graph, scores, sparsity, self.options["pruning_scope"],
                                 self.options["round_to"], self.options["min_channels"])
        masks = channel_masks(self.graph, remove)
        for wrapper in wrappers:
            layer_masks = masks.get(id(wrapper.layer), {})
            for weight, mask_variable, name in zip(wrapper.pruned_weights, wrapper.masks,
                                                   _names(wrapper)):
                mask = layer_masks.get(name, np.ones(weight.shape, "float32"))
                mask_variable.assign(mask)
                weight.assign(apply_mask(ops.convert_to_numpy(weight), mask))

    def scores(self, wrappers):
        """Scores of the masked weights, or for "taylor" the contributions accumulated since the
        last pruning step (then reset)."""
        criterion = self.options["criterion"]
        if criterion == "taylor":
            contributions = {}
            for wrapper in wrappers:
                names = _names(wrapper)
                for index, axis, accumulator in wrapper.taylor_importance:
                    key = (id(wrapper.layer), names[index], axis)
                    contributions[key] = ops.convert_to_numpy(accumulator)
                    accumulator.assign(ops.zeros_like(accumulator))
            if any(c.any() for c in contributions.values()):
                return taylor_scores(self.graph, contributions)
            warnings.warn("criterion='taylor': no training batch ran since the last pruning "
                          "step, so there are no gradients to rank channels by; ranking by 'l1' "
                          "this once. Prune later (begin_step > 0) or less often (frequency).",
                          stacklevel=2)
            criterion = "l1"
        current = {id(w.layer): dict(zip(_names(w), w.masked_weight_values())) for w in wrappers}
        weights = {key: {**values, **current.get(key, {})}
                   for key, values in self.graph.weight_values().items()}
        return channel_scores(self.graph, criterion, weights=weights)


def _names(wrapper):
    return [relative_weight_name(wrapper.layer, w) for w in wrapper.pruned_weights]
