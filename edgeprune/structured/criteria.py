"""Channel importance: one score per coupled channel (atom), summed over every weight it owns.

A coupled channel owns the producing filters, the per-channel parameters and the consumers' input
slices of every layer in its group, so all criteria look at the whole group, as in Torch-Pruning.
"""

import numpy as np

CRITERIA = ("l1", "l2", "bn_gamma", "taylor")


def check_criterion(criterion):
    if criterion not in CRITERIA:
        raise ValueError(f"Unknown channel criterion {criterion!r}; use one of {CRITERIA}.")


def channel_scores(graph, criterion="l1", weights=None, gradients=None):
    """One importance score per atom of `graph` (higher = more important).

    Args:
        graph: a `ChannelGraph`.
        criterion: "l1" (sum of |w|), "l2" (root of the sum of w²), "bn_gamma" (|γ| of the
            BatchNormalization layers in the group; groups without one fall back to "l1"), or
            "taylor" (first-order Taylor, Molchanov et al. 2019: (Σ w·∂L/∂w)² over each weight
            slice the channel owns, summed over its slices).
        weights: `{layer id: {weight name: array}}` to score instead of the layers' current
            values (the gradual path passes masked values).
        gradients: `{layer id: {weight name: array}}`, needed by "taylor".
    """
    check_criterion(criterion)
    values = weights if weights is not None else graph.weight_values()
    if criterion == "taylor":
        return taylor_scores(graph, taylor_contributions(graph, values, gradients))
    scores = np.zeros(graph.num_atoms)
    gamma = np.zeros(graph.num_atoms)
    has_gamma = np.zeros(graph.num_atoms, bool)
    for s in graph.slices:
        if not s.scored:
            continue
        value = np.moveaxis(values[id(s.layer)][s.weight], s.axis, 0).reshape(len(s.atoms), -1)
        if criterion == "l2":
            np.add.at(scores, s.atoms, (value ** 2).sum(axis=1))
        else:
            np.add.at(scores, s.atoms, np.abs(value).sum(axis=1))
            if criterion == "bn_gamma" and s.weight == "gamma":
                np.add.at(gamma, s.atoms, np.abs(value[:, 0]))
                has_gamma[s.atoms] = True
    if criterion == "l2":
        return np.sqrt(scores)
    if criterion == "bn_gamma":
        return _bn_gamma_where_present(graph, scores, gamma, has_gamma)
    return scores


def taylor_scores(graph, contributions):
    """Taylor scores: each atom sums the contributions of its slices.

    `contributions[(id(layer), weight name, axis)]` holds, per channel along that axis,
    (Σ w·∂L/∂w)²: of one batch (one-shot), or summed over the training batches since the last
    pruning step (what the "taylor" wrappers accumulate).
    """
    scores = np.zeros(graph.num_atoms)
    for s in graph.slices:
        contribution = contributions.get((id(s.layer), s.weight, s.axis))
        if s.scored and contribution is not None:
            np.add.at(scores, s.atoms, contribution)
    return scores


def taylor_contributions(graph, values, gradients):
    """`{(id(layer), weight name, axis): (Σ w·∂L/∂w)² per channel}` of one batch's gradients."""
    if gradients is None:
        raise ValueError("criterion='taylor' needs gradients of the loss; pass data=(x, y) "
                         "and a loss.")
    contributions = {}
    for s in graph.slices:
        if s.scored:
            product = values[id(s.layer)][s.weight] * gradients[id(s.layer)][s.weight]
            other_axes = tuple(a for a in range(product.ndim) if a != s.axis)
            contributions[id(s.layer), s.weight, s.axis] = product.sum(axis=other_axes) ** 2
    return contributions


def _bn_gamma_where_present(graph, l1, gamma, has_gamma):
    scores = l1.copy()
    for group in graph.groups:
        if has_gamma[group.atoms].all():
            scores[group.atoms] = gamma[group.atoms]
    return scores
