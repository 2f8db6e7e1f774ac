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

import keras
import numpy as np

from edgeprune.autodiff import take_accumulated
from edgeprune.model.naming import weight_key
from edgeprune.model.rebuild import copy_layer, rebuild
from edgeprune.sparsity.granularity import Granularity, register_granularity
from edgeprune.sparsity.wrapper import PruneLowMagnitude
from edgeprune.structured.criteria import channel_scores, get_criterion
from edgeprune.structured.graph import ChannelGraph
from edgeprune.structured.masked_norm import with_maskable_norms
from edgeprune.structured.selection import channel_masks, check_selection, select_channels


class Channels(Granularity):
    """Whole coupled channels (filters, units), zeroed so that `edgeprune.shrink` removes them;
    the schedule's sparsity is the fraction of channels removed."""

    name = "channels"
    options = {"criterion": "l1", "pruning_scope": "layer", "round_to": 1, "min_channels": 1,
               "skip_layers": []}

    def check_options(self, options):
        options = super().check_options(options)
        get_criterion(options["criterion"])
        check_selection(0.0, options["pruning_scope"], options["round_to"],
                        options["min_channels"])
        return {**options, "round_to": int(options["round_to"]),
                "min_channels": int(options["min_channels"]),
                "skip_layers": list(options["skip_layers"])}

    def wrap_model(self, model, pruning_schedule, options, skip_layers, prune_depthwise):
        if not isinstance(model, keras.Model):
            raise ValueError("structure='channels' needs the whole model (Functional or "
                             "Sequential): coupled channels are found from its graph.")
        return wrap_for_channels(model, pruning_schedule,
                                 {**options, "skip_layers": list(skip_layers)})

    def masker(self, model):
        return ChannelMasker(model)

    def gradient_terms(self, value, gradient, axis, options):
        return get_criterion(options["criterion"]).gradient_terms(value, gradient, axis)


def wrap_for_channels(model, pruning_schedule, options):
    """A copy of `model` whose channel-owning layers are wrapped for gradual channel pruning.

    The schedule's sparsity is the fraction of channels removed, per group ("layer") or
    over all prunable channels ("global"); see `select_channels` for the other options.
    """
    model = with_maskable_norms(model)
    graph = ChannelGraph(model, skip_layers=options["skip_layers"])
    masked_weights, gradient_axes = {}, {}
    for s in graph.slices:
        if s.zeroable and graph.prunable[s.atoms].any():
            names = masked_weights.setdefault(id(s.layer), [])
            if s.weight not in names:
                names.append(s.weight)
            if s.scored:
                gradient_axes.setdefault(id(s.layer), {}).setdefault(s.weight, []).append(s.axis)
    if not masked_weights:
        raise ValueError(f"Model '{model.name}' has no prunable channel: "
                         f"{graph.summary()}")
    needs_gradients = get_criterion(options["criterion"]).needs_gradients

    def transform(layer):
        copy = copy_layer(layer)
        names = masked_weights.get(id(layer))
        if names is None:
            return copy
        return PruneLowMagnitude(
            copy, pruning_schedule=pruning_schedule, weight_names=names,
            granularity="channels", granularity_options=options,
            gradient_axes=gradient_axes.get(id(layer)) if needs_gradients else None)

    return rebuild(model, transform)


class ChannelMasker:
    """Computes channel masks for the `structure="channels"` wrappers of one model, from the
    channel graph of the wrapped model itself (built once, at the first pruning step)."""

    def __init__(self, model):
        self.model = model
        self.graph = None

    def update(self, wrappers, sparsities):
        """Zeroes the lowest-scoring coupled channels so that the scheduled fraction of them is
        removed."""
        options = wrappers[0].granularity_options
        if self.graph is None:
            self.graph = ChannelGraph(self.model, skip_layers=options["skip_layers"])
        ranked = {id(wrapper): wrapper.masked_weight_values() for wrapper in wrappers}
        remove = select_channels(self.graph, self.scores(wrappers, options, ranked),
                                 sparsities[-1], options["pruning_scope"], options["round_to"],
                                 options["min_channels"])
        masks = channel_masks(self.graph, remove)
        for wrapper in wrappers:
            layer_masks = masks.get(id(wrapper.layer), {})
            wrapper.assign_masks([
                (layer_masks.get(name, np.ones(weight.shape, "float32")), 0.0)
                for weight, name in zip(wrapper.pruned_weights, _names(wrapper))],
                ranked[id(wrapper)])

    def scores(self, wrappers, options, ranked):
        """Scores of the masked weights (`ranked`: each wrapper's `masked_weight_values()`, by
        id), or for a criterion that needs gradients, of the terms the wrappers accumulated since
        the last pruning step (then reset)."""
        criterion = get_criterion(options["criterion"])
        if criterion.needs_gradients:
            terms = {}
            for wrapper in wrappers:
                names = _names(wrapper)
                for index, axis, accumulator in wrapper.gradient_accumulators:
                    terms[(id(wrapper.layer), names[index], axis)] = take_accumulated(
                        accumulator)
            if any(t.any() for t in terms.values()):
                return criterion.scores_from_terms(self.graph, terms)
            warnings.warn(f"criterion={criterion.name!r}: no training batch ran since the last "
                          "pruning step, so there are no gradients to rank channels by; ranking "
                          "by 'l1' this once. Prune later (begin_step > 0) or less often "
                          "(frequency).", stacklevel=2)
            criterion = get_criterion("l1")
        current = {id(w.layer): dict(zip(_names(w), ranked[id(w)])) for w in wrappers}
        weights = {key: {**values, **current.get(key, {})}
                   for key, values in self.graph.weight_values().items()}
        return channel_scores(self.graph, criterion, weights=weights)


def _names(wrapper):
    return [weight_key(wrapper.layer, w) for w in wrapper.pruned_weights]


register_granularity(Channels())
