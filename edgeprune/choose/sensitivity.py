"""Sensitivity scans: how much a metric drops when one layer (or channel group) alone is pruned.

The scan prunes each unit one-shot at every level, evaluates, and puts the weights back. It works
on ONE copy of the model (the model passed in is never changed): weights are restored in place,
nothing is rebuilt or recompiled between evaluations, so `eval_fn`'s compiled predict or evaluate
function is traced once. Each call owns its copy, so scans of different models may run in
parallel threads.
"""

import keras
from tqdm.auto import tqdm

from edgeprune.choose.table import SensitivityTable
from edgeprune.choose.units import channel_units, cost_terms, layer_units
from edgeprune.model.cost import deployed_params, model_macs
from edgeprune.model.rebuild import copy_layer, rebuild
from edgeprune.sparsity.granularity import get_granularity
from edgeprune.sparsity.wrapper import leaf_layers
from edgeprune.structured import Channels
from edgeprune.structured.masked_norm import prunable_copy

DEFAULT_SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)


def sensitivity_scan(model, eval_fn, sparsities=DEFAULT_SPARSITIES, structure="unstructured",
                     layers=None, higher_is_better=True, progress=True, **structure_options):
    """Prunes one unit at a time, one-shot, at each sparsity and records `eval_fn`'s metric.

    Args:
        model: a trained Keras model; it is not changed (the scan works on a copy, compiled like
            `model` when `model` is compiled).
        eval_fn: `eval_fn(model) -> float`, e.g. accuracy on a held-out split.
        sparsities: levels in (0, 1) to try for each unit.
        structure: "unstructured" (units are prunable layers, magnitude pruning of their
            weights) or "channels" (units are coupled channel groups of `ChannelGraph`).
        layers: names of the layers (unstructured) or channel groups (channels) to scan;
            default all.
        higher_is_better: False when `eval_fn` returns a loss.
        progress: show a tqdm progress bar.
        **structure_options: `block_size`, `block_pooling_type` (unstructured); `criterion`
            (channels: "l1", "l2" or "bn_gamma").

    Example:

    >>> import keras, numpy as np, edgeprune as ep
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"),
    ...                           keras.layers.Dense(2, name="out")])
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    >>> y = model.predict(x, verbose=0)
    >>> def closeness(m):
    ...     return -float(np.mean((m.predict(x, verbose=0) - y) ** 2))
    >>> table = ep.sensitivity_scan(model, closeness, sparsities=(0.5, 0.9), progress=False)
    >>> table.units
    ['hidden', 'out']
    """
    levels = _check_sparsities(sparsities)
    granularity = get_granularity(structure)
    if not callable(eval_fn):
        raise ValueError("eval_fn must be a callable eval_fn(model) -> float.")
    options = granularity.check_options(structure_options)
    if isinstance(granularity, Channels):  # units are coupled channel groups, not layers
        work = working_copy(model, prunable_copy)
        units = channel_units(work, layers, **options)
    else:
        work = working_copy(model)
        units = layer_units(work, layers, granularity, options)
    baseline = _evaluate(eval_fn, work)
    metrics = {}
    with tqdm(total=len(units) * len(levels), desc="sensitivity scan",
              disable=not progress) as bar:
        for unit in units:
            metrics[unit.name] = []
            original = unit.values()
            for level in levels:
                unit.prune(level)
                metrics[unit.name].append(_evaluate(eval_fn, work))
                unit.restore(original)
                bar.update()
    terms = cost_terms(units)
    return SensitivityTable(
        baseline=baseline, sparsities=levels, metrics=metrics,
        sizes={u.name: u.size for u in units}, terms=terms,
        fixed_params=deployed_params(work) - sum(t["params"] for t in terms),
        fixed_macs=model_macs(leaf_layers(work)) - sum(t["macs"] for t in terms),
        structure=structure, higher_is_better=higher_is_better)


def working_copy(model, transform=copy_layer):
    """A copy of `model` with its own weights (each layer `transform`ed), compiled as `model` is
    (if it is)."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a Keras 3 model, got {type(model).__name__}.")
    copy = rebuild(model, transform)
    if model.compiled and not copy.compiled:  # clone_model compiles graph models already
        copy.compile_from_config(model.get_compile_config())
    return copy


def _check_sparsities(sparsities):
    try:
        levels = tuple(sorted(float(s) for s in sparsities))
    except (TypeError, ValueError):
        raise ValueError(f"sparsities must be numbers in (0, 1), got {sparsities!r}.") from None
    if not levels or levels[0] <= 0.0 or levels[-1] >= 1.0 or len(set(levels)) != len(levels):
        raise ValueError(f"sparsities must be distinct numbers in (0, 1), got {sparsities!r}.")
    return levels


def _evaluate(eval_fn, model):
    value = eval_fn(model)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"eval_fn must return one number, got {value!r}.") from None
