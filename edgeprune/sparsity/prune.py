"""`prune_low_magnitude`: wrap the prunable layers of a layer, list of layers or model."""

import inspect
from collections.abc import Mapping

import keras

from edgeprune.sparsity import layer_registry
from edgeprune.sparsity.granularity import get_granularity
from edgeprune.model.rebuild import copy_layer, rebuild
from edgeprune.sparsity.schedules import ConstantSparsity
from edgeprune.sparsity.wrapper import PruneLowMagnitude, leaf_layers


def prune_low_magnitude(to_prune, pruning_schedule=None, block_size=(1, 1),
                        block_pooling_type="AVG", sparsity_m_by_n=None, pruning_policy=None,
                        pruning_scope="layer", structure="unstructured", skip_layers=(),
                        prune_depthwise=False, criterion="l1", round_to=1,
                        min_channels=1, **kwargs):
    """Wraps every prunable layer of `to_prune` so training drives its weights to sparsity.

    `to_prune` is a Sequential, functional or subclassed model (nested models and shared layers
    included), a layer, or a list of layers, as in tfmot. For a model, a NEW model is returned
    with copied weights: the model passed in is never changed. A layer (or list) is wrapped as it
    is, for building a model from pruned layers.

    Args:
        pruning_schedule: a `PruningSchedule`; default `ConstantSparsity(0.5, begin_step=0)`.
            For a model, also a dict `{layer name: PruningSchedule}` that gives each layer its
            own target (e.g. from `Allocation.schedules`); prunable layers it does not name are
            left unwrapped.
        block_size, block_pooling_type, sparsity_m_by_n: granularity, see `PruneLowMagnitude`.
        pruning_policy: optional object with `allow_pruning(layer)` (and optionally
            `ensure_model_supports_pruning(model)`), e.g. `PruneForLatencyOnXNNPack()`.
        pruning_scope: "layer" (tfmot) or "global": rank weights (or, for structure="channels",
            channels) across all pruned layers.
        structure: "unstructured" (weights, blocks or N:M) or "channels": whole coupled channels
            (filters, units) are zeroed so that `edgeprune.shrink` can remove them afterwards;
            the schedule's sparsity is then the fraction of channels removed.
        skip_layers: names of layers to leave unwrapped ("channels": whose output channels are
            kept).
        criterion, round_to, min_channels: for structure="channels" only, see
            `edgeprune.prune_channels`.
        prune_depthwise: also prune DepthwiseConv kernels (tfmot never does).

    Example:

    >>> import keras, edgeprune as ep
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),
    ...                           keras.layers.Dense(2)])
    >>> pruned = ep.prune_low_magnitude(
    ...     model, pruning_schedule=ep.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100))
    >>> [type(layer).__name__ for layer in pruned.layers]
    ['PruneLowMagnitude', 'PruneLowMagnitude']
    """
    granularity = get_granularity(structure)
    given = {name: value for name, value in (
        ("block_size", block_size), ("block_pooling_type", block_pooling_type),
        ("sparsity_m_by_n", sparsity_m_by_n), ("pruning_scope", pruning_scope),
        ("criterion", criterion), ("round_to", round_to), ("min_channels", min_channels))
        if value != _SIGNATURE_DEFAULTS[name]}
    given.update({k: kwargs.pop(k) for k in list(kwargs) if k in granularity.options})
    options = granularity.check_options(given)
    per_layer = pruning_schedule if isinstance(pruning_schedule, Mapping) else None
    if per_layer is not None:
        _check_per_layer(to_prune, per_layer, options.get("pruning_scope"), structure,
                         prune_depthwise)
        pruning_schedule = None
    schedule = pruning_schedule or ConstantSparsity(0.5, 0)
    wrapped = None if per_layer else granularity.wrap_model(
        to_prune, schedule, options, skip_layers, prune_depthwise)
    if wrapped is not None:
        if pruning_policy or kwargs:
            raise ValueError(f"structure={structure!r} chooses the weights it masks: "
                             "pruning_policy and wrapper options do not apply.")
        return wrapped
    wrapper_args = dict(pruning_schedule=schedule, granularity=structure,
                        granularity_options=options, **kwargs)

    if isinstance(to_prune, (list, tuple)):
        return [PruneLowMagnitude(layer, **wrapper_args) for layer in to_prune]
    if not isinstance(to_prune, keras.layers.Layer):
        raise ValueError("prune_low_magnitude takes a Keras 3 model, layer or list of layers, got "
                         f"{type(to_prune).__module__}.{type(to_prune).__name__}. A tf_keras "
                         "(Keras 2) model must be rebuilt with `import keras` (Keras 3).")
    if not isinstance(to_prune, keras.Model):
        return PruneLowMagnitude(to_prune, **wrapper_args)

    skip = set(skip_layers)
    if pruning_policy is not None and hasattr(pruning_policy, "ensure_model_supports_pruning"):
        pruning_policy.ensure_model_supports_pruning(to_prune)

    def should_wrap(layer):
        if layer.name in skip or isinstance(layer, PruneLowMagnitude):
            return False
        if per_layer is not None and layer.name not in per_layer:
            return False
        if not layer_registry.is_prunable(layer, prune_depthwise):
            return False
        return pruning_policy is None or pruning_policy.allow_pruning(layer)

    def transform(layer):
        copy = copy_layer(layer)
        if not should_wrap(layer):
            return copy
        args = wrapper_args if per_layer is None else {
            **wrapper_args, "pruning_schedule": per_layer[layer.name]}
        return PruneLowMagnitude(copy, **args)

    unknown = skip - {layer.name for layer in leaf_layers(to_prune)}
    if unknown:
        raise ValueError(f"skip_layers names layers the model does not have: {sorted(unknown)}.")
    pruned = rebuild(to_prune, transform)
    if not any(isinstance(layer, PruneLowMagnitude) for layer in leaf_layers(pruned)):
        raise ValueError(f"Model '{to_prune.name}' has no prunable layer (Dense, Conv, Embedding, "
                         "attention, RNN, or a layer with get_prunable_weights()).")
    return pruned


def prune_scope():
    """tfmot's `prune_scope()`, for code that loads a pruned model inside it: a scope that maps
    the name "PruneLowMagnitude" to the wrapper. `keras.models.load_model` needs no scope for a
    model saved by edgeprune (the wrapper is registered with Keras).

    >>> with ep.prune_scope():  # doctest: +SKIP
    ...     model = keras.models.load_model("pruned.h5")
    """
    return keras.saving.CustomObjectScope({"PruneLowMagnitude": PruneLowMagnitude})


def _check_per_layer(to_prune, schedules, pruning_scope, structure, prune_depthwise):
    if structure != "unstructured":
        raise ValueError("A dict pruning_schedule sets each layer's weight sparsity "
                         "(structure='unstructured'); for per-group channel targets use "
                         "edgeprune.apply_channel_allocation(model, allocation).")
    if not isinstance(to_prune, keras.Model):
        raise ValueError("A dict pruning_schedule ({layer name: schedule}) needs a model; for a "
                         "layer or a list of layers pass one PruningSchedule.")
    if pruning_scope == "global":
        raise ValueError("A dict pruning_schedule gives each layer its own target, which "
                         "pruning_scope='global' (one ranking, one target) cannot honour: use "
                         "pruning_scope='layer'.")
    layers = {layer.name: layer for layer in leaf_layers(to_prune)}
    unknown = sorted(set(schedules) - set(layers))
    if unknown:
        raise ValueError(f"pruning_schedule names layers the model does not have: {unknown}.")
    empty = sorted(name for name in schedules
                   if not layer_registry.is_prunable(layers[name], prune_depthwise))
    if empty:
        raise ValueError(f"pruning_schedule names layers with no weight to prune: {empty}.")


_SIGNATURE_DEFAULTS = {name: parameter.default for name, parameter in
                       inspect.signature(prune_low_magnitude).parameters.items()}
