"""Which coupled channels to remove, given their scores and a target channel sparsity."""

import numpy as np

from edgeprune.model.naming import weight_by_key
from edgeprune.sparsity.granularity import PRUNING_SCOPES


def check_selection(sparsity, pruning_scope="layer", round_to=1, min_channels=1):
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"Channel sparsity must lie in [0, 1); got {sparsity}.")
    if pruning_scope not in PRUNING_SCOPES:
        raise ValueError(f"pruning_scope must be one of {PRUNING_SCOPES}, got {pruning_scope!r}.")
    if int(round_to) != round_to or round_to < 1:
        raise ValueError(f"round_to must be a positive integer; got {round_to}.")
    if int(min_channels) != min_channels or min_channels < 1:
        raise ValueError(f"min_channels must be a positive integer; got {min_channels}.")


def select_channels(graph, scores, sparsity, pruning_scope="layer", round_to=1,
                    min_channels=1):
    """Boolean array over the atoms of `graph`: True for each coupled channel to remove.

    Args:
        graph: a `ChannelGraph`.
        scores: importance per atom (see `channel_scores`).
        sparsity: fraction of each group's channels to remove ("layer"), or of all prunable
            channels, ranked together after dividing each group's scores by their mean ("global").
        round_to: kept channel counts are rounded up to a multiple of this (4 or 8 suit SIMD).
        min_channels: no group keeps fewer channels than this.
    """
    check_selection(sparsity, pruning_scope, round_to, min_channels)
    if pruning_scope == "global":
        removed = _global_removal_counts(graph, scores, sparsity)
    else:
        removed = [len(g) - int(round(len(g) * (1.0 - sparsity))) for g in graph.groups]
    remove = np.zeros(graph.num_atoms, bool)
    for group, count in zip(graph.groups, removed):
        keep = max(len(group) - count, min_channels)
        keep = min(-(-keep // round_to) * round_to, len(group))
        order = np.argsort(scores[group.atoms], kind="stable")
        remove[group.atoms[order[:len(group) - keep]]] = True
    return remove


def _global_removal_counts(graph, scores, sparsity):
    normalized, owner = [], []
    for g, group in enumerate(graph.groups):
        group_scores = scores[group.atoms]
        normalized.append(group_scores / (group_scores.mean() + 1e-12))
        owner.append(np.full(len(group), g))
    if not normalized:
        return []
    normalized, owner = np.concatenate(normalized), np.concatenate(owner)
    lowest = np.argsort(normalized, kind="stable")[:int(round(len(normalized) * sparsity))]
    return np.bincount(owner[lowest], minlength=len(graph.groups)).tolist()


def channel_masks(graph, remove):
    """`{id(layer): {weight name: 0/1 float32 array}}` zeroing every slice of the removed atoms."""
    masks = {}
    for s in graph.slices:
        if not s.zeroable or not remove[s.atoms].any():
            continue
        shape = tuple(weight_by_key(s.layer, s.weight).shape)
        mask = masks.setdefault(id(s.layer), {}).setdefault(s.weight, np.ones(shape, "float32"))
        np.moveaxis(mask, s.axis, 0)[remove[s.atoms]] = 0.0
    return masks
