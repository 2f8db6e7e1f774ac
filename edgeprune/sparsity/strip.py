"""`strip_pruning` and `sparsity_report`: from a pruned model to a plain, sparse Keras model."""

import warnings

import keras
import numpy as np
from keras import ops

from edgeprune.sparsity import layer_registry
from edgeprune.sparsity.granularity import get_granularity
from edgeprune.model.naming import weight_key
from edgeprune.model.rebuild import copy_layer, rebuild
from edgeprune.sparsity.wrapper import PruneLowMagnitude, leaf_layers, pruning_wrappers


def strip_pruning(model):
    """Returns a plain Keras model: no wrappers left, `weight * mask` baked into the weights.

    The result saves, loads and converts to TFLite like any Keras model. `model` is not changed.
    Warns (`UserWarning`) when training stopped before the pruning schedules reached their
    target (an `EarlyStopping`, too few epochs): the stripped model is then less sparse than
    asked.

    >>> final = ep.strip_pruning(pruned)  # doctest: +SKIP
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"strip_pruning takes a Keras model, got {type(model).__name__}.")
    message = unfinished_pruning(model)
    if message:
        warnings.warn(message, stacklevel=2)
    return rebuild(model, _unwrap)


def unfinished_pruning(model):
    """A sentence saying which wrappers of `model` stopped before their schedule's target, or
    None. Schedules that do not state a target (`PruningSchedule.final_target`) are not judged,
    nor granularities whose pattern is complete from the first step (N:M)."""
    short = []
    for wrappers in _ranked_together(pruning_wrappers(model)):
        wrapper = wrappers[0]
        if not (wrapper.built and wrapper.pruned_weights) or (
                wrapper.current_step() >= 1 and get_granularity(
                    wrapper.granularity).prunes_at_first_step(wrapper.granularity_options)):
            continue
        target = wrapper.pruning_schedule.final_target()
        # Masks already at the target (one-shot pruning forced them) are finished, whatever step.
        if target and wrapper.current_step() < target[1] and (
                _mask_sparsity(wrappers) < target[0] - _TARGET_TOLERANCE):
            short.append((wrapper.current_step(), *target, wrappers))
    if not short:
        return None
    step, sparsity, target_step, _ = max(short, key=lambda item: item[2])
    short_wrappers = [w for *_, wrappers in short for w in wrappers]
    reached = _mask_sparsity(short_wrappers)
    when = f"stopped at step {step}" if step > 0 else "never ran (no training step)"
    return (f"Pruning {when}, before its schedule reached {sparsity:.0%} sparsity at step "
            f"{target_step}: {len(short_wrappers)} pruned layer(s) are {reached:.0%} sparse. "
            "Train until the schedule's end (or end the schedule within the training) before "
            "stripping.")


def _ranked_together(wrappers):
    """The wrappers in groups that share one target: those of one granularity ranked with
    `pruning_scope="global"` reach it together (some layers above it, some below), any other
    wrapper alone."""
    groups = {}
    for wrapper in wrappers:
        scope = wrapper.granularity_options.get("pruning_scope")
        key = (wrapper.granularity, "global") if scope == "global" else id(wrapper)
        groups.setdefault(key, []).append(wrapper)
    return list(groups.values())


# Kept counts are rounded to whole weights (and channels): a mask this close is at its target.
_TARGET_TOLERANCE = 0.01


def _mask_sparsity(wrappers):
    masks = [ops.convert_to_numpy(mask) for wrapper in wrappers for mask in wrapper.masks]
    return 1.0 - sum(float(m.sum()) for m in masks) / sum(m.size for m in masks)


def stripped(model):
    """`strip_pruning(model)` when `model` has pruning wrappers, else `model` itself."""
    if isinstance(model, keras.Model) and any(isinstance(layer, PruneLowMagnitude)
                                              for layer in leaf_layers(model)):
        return strip_pruning(model)
    return model


def _unwrap(layer):
    if not isinstance(layer, PruneLowMagnitude):
        return copy_layer(layer)
    masked = {id(w): value for w, value in zip(layer.pruned_weights, layer.masked_weight_values())}
    weights = [masked[id(w)] if id(w) in masked else ops.convert_to_numpy(w)
               for w in layer.layer.weights]
    return copy_layer(layer.layer, weights)


def sparsity_report(model):
    """Per prunable weight: layer name, weight name, shape, sparsity, zeros and size.

    Works on pruned models (masks applied) and on plain models (zeros counted).

    >>> for row in ep.sparsity_report(final):  # doctest: +SKIP
    ...     print(row["layer"], row["weight"], row["sparsity"])
    """
    rows = []
    for layer in leaf_layers(model):
        if isinstance(layer, PruneLowMagnitude):
            named = zip(layer.pruned_weights, layer.masked_weight_values())
            owner = layer.layer
        else:
            try:
                weights = layer_registry.prunable_weights(layer, prune_depthwise=True)
            except ValueError:
                continue
            named = ((w, ops.convert_to_numpy(w)) for w in weights)
            owner = layer
        for weight, value in named:
            zeros = int(np.count_nonzero(value == 0))
            rows.append({"layer": owner.name, "weight": weight_key(owner, weight),
                         "shape": tuple(value.shape), "size": int(value.size), "zeros": zeros,
                         "sparsity": zeros / value.size if value.size else 0.0})
    return rows
