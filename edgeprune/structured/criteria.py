"""Channel importance criteria: objects that score each coupled channel (atom) of a graph.

A coupled channel owns the producing filters, the per-channel parameters and the consumers' input
slices of every layer in its group, so a criterion sees the whole group, as in Torch-Pruning. A
criterion ranks from the weights alone (`scores`), or from gradients (`needs_gradients`): then
each training batch (gradual pruning) or each batch of `data` (one-shot) adds `gradient_terms` per
channel of each weight slice, and `scores_from_terms` turns the sums into scores.

Add one with `register_channel_criterion`:

>>> import numpy as np
>>> class MaxAbs(ChannelCriterion):
...     name = "doc_max_abs"
...     def slice_scores(self, value):
...         return np.abs(value).max(axis=1)
>>> register_channel_criterion(MaxAbs())
>>> "doc_max_abs" in criterion_names()
True
>>> CRITERIA.unregister("doc_max_abs")
"""

import numpy as np
from keras import ops

from edgeprune.registry import Registry

class ChannelCriterion:
    """Base class: set `name`, and implement `slice_scores` (weights only) or set
    `needs_gradients = True` and implement `gradient_terms`."""

    name = None
    needs_gradients = False

    def slice_scores(self, value):
        """Importance of each channel from one weight slice, `value` shaped [channels, -1]."""
        raise NotImplementedError(f"criterion {self.name!r} must implement slice_scores.")

    def scores(self, graph, values):
        """One score per atom of `graph` from `values` (`{id(layer): {weight key: array}}`):
        the sum over every scored slice the atom owns."""
        scores = np.zeros(graph.num_atoms)
        for s in graph.slices:
            if s.scored:
                value = np.moveaxis(values[id(s.layer)][s.weight], s.axis, 0)
                np.add.at(scores, s.atoms, self.slice_scores(value.reshape(len(s.atoms), -1)))
        return scores

    def gradient_terms(self, value, gradient, axis):
        """One batch's term per index along `axis` of a weight (`keras.ops`: runs inside the
        training step's backward pass, and on NumPy arrays for one-shot pruning)."""
        raise NotImplementedError(f"criterion {self.name!r} does not use gradients.")

    def scores_from_terms(self, graph, terms):
        """Scores from `terms[(id(layer), weight key, axis)]`, the terms summed over batches:
        each atom sums those of its slices."""
        scores = np.zeros(graph.num_atoms)
        for s in graph.slices:
            term = terms.get((id(s.layer), s.weight, s.axis))
            if s.scored and term is not None:
                np.add.at(scores, s.atoms, term)
        return scores


class L1(ChannelCriterion):
    """Sum of |w| over every weight the channel owns."""

    name = "l1"

    def slice_scores(self, value):
        return np.abs(value).sum(axis=1)


class L2(ChannelCriterion):
    """Root of the sum of w² over every weight the channel owns."""

    name = "l2"

    def slice_scores(self, value):
        return (value ** 2).sum(axis=1)

    def scores(self, graph, values):
        return np.sqrt(super().scores(graph, values))


class BatchNormGamma(ChannelCriterion):
    """|γ| of the BatchNormalization layers in the group (Liu et al., network slimming); groups
    without one are ranked by L1."""

    name = "bn_gamma"

    def scores(self, graph, values):
        scores = L1().scores(graph, values)
        gamma = np.zeros(graph.num_atoms)
        has_gamma = np.zeros(graph.num_atoms, bool)
        for s in graph.slices:
            if s.scored and s.weight == "gamma":
                np.add.at(gamma, s.atoms, np.abs(values[id(s.layer)][s.weight]))
                has_gamma[s.atoms] = True
        for group in graph.groups:
            if has_gamma[group.atoms].all():
                scores[group.atoms] = gamma[group.atoms]
        return scores


class Taylor(ChannelCriterion):
    """First-order Taylor (Molchanov et al. 2019): (Σ w·∂L/∂w)² over each weight slice the
    channel owns, summed over its slices and over batches."""

    name = "taylor"
    needs_gradients = True

    def gradient_terms(self, value, gradient, axis):
        product = ops.cast(value * gradient, "float32")
        others = [a for a in range(len(product.shape)) if a != axis % len(product.shape)]
        return ops.square(ops.sum(product, axis=others))


CRITERIA = Registry(ChannelCriterion, "channel criterion")


def register_channel_criterion(criterion):
    """Makes `criterion` (a `ChannelCriterion` instance) available by name to `prune_channels`,
    `prune_low_magnitude(structure="channels", criterion=...)`, sensitivity scans and recipes."""
    CRITERIA.register(criterion)


def get_criterion(criterion):
    """The criterion object for a name (or the object itself)."""
    return criterion if isinstance(criterion, ChannelCriterion) else CRITERIA.get(criterion)


def criterion_names():
    return CRITERIA.names()


for _criterion in (L1(), L2(), BatchNormGamma(), Taylor()):
    register_channel_criterion(_criterion)


def channel_scores(graph, criterion="l1", weights=None, gradients=None):
    """One importance score per atom of `graph` (higher = more important).

    Args:
        graph: a `ChannelGraph`.
        criterion: a registered criterion's name ("l1", "l2", "bn_gamma", "taylor") or a
            `ChannelCriterion`.
        weights: `{id(layer): {weight key: array}}` to score instead of the layers' current
            values (the gradual path passes masked values).
        gradients: `{id(layer): {weight key: array}}` of one batch, for a criterion that
            needs gradients.
    """
    criterion = get_criterion(criterion)
    values = weights if weights is not None else graph.weight_values()
    if criterion.needs_gradients:
        return criterion.scores_from_terms(graph, gradient_terms(graph, criterion, values,
                                                                 gradients))
    return criterion.scores(graph, values)


def gradient_terms(graph, criterion, values, gradients):
    """`{(id(layer), weight key, axis): terms}` of one batch's gradients for every scored
    slice."""
    if gradients is None:
        raise ValueError(f"criterion={criterion.name!r} needs gradients of the loss; pass "
                         "data=(x, y) and a loss.")
    return {(id(s.layer), s.weight, s.axis): ops.convert_to_numpy(criterion.gradient_terms(
        values[id(s.layer)][s.weight], gradients[id(s.layer)][s.weight], s.axis))
        for s in graph.slices if s.scored}
