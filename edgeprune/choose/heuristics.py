"""The usual heuristics as `Allocation`s: one sparsity everywhere, or one global magnitude
ranking frozen into per-layer sparsities."""

import numpy as np
from keras import ops

from edgeprune.choose.allocation import Allocation
from edgeprune.choose.units import prunable_layers
from edgeprune.sparsity import layer_registry
from edgeprune.sparsity import masks as mask_lib


def uniform_allocation(model, sparsity, skip_first_last=False, skip=()):
    """The same sparsity in every prunable layer; skipped layers' share moves to the others.

    With `skip_first_last=True` the first and last prunable layers stay dense and the others
    are pruned harder, so the overall sparsity is still `sparsity`.

    >>> allocation = ep.uniform_allocation(model, 0.8, skip_first_last=True)  # doctest: +SKIP
    """
    sizes = layer_sizes(model)
    names = list(sizes)
    skipped = set(skip) | ({names[0], names[-1]} if skip_first_last else set())
    unknown = sorted(skipped - set(names))
    if unknown:
        raise ValueError(f"skip names layers with no prunable weights: {unknown}.")
    pruned = sum(n for name, n in sizes.items() if name not in skipped)
    level = sparsity * sum(sizes.values()) / pruned if pruned else 1.0
    if not 0.0 <= level < 1.0:
        raise ValueError(f"sparsity {sparsity} cannot be met with {sorted(skipped)} unpruned: "
                         "the other layers would need to lose every weight; lower sparsity.")
    return Allocation({name: 0.0 if name in skipped else level for name in names}, sizes,
                      method="uniform", target=sparsity)


def global_magnitude_allocation(model, sparsity, skip=()):
    """Per-layer sparsities of one magnitude ranking over all prunable layers' weights.

    This is where one-shot `pruning_scope="global"` would cut the model now, frozen into a
    per-layer plan.

    >>> allocation = ep.global_magnitude_allocation(model, 0.9)  # doctest: +SKIP
    """
    layers = [layer for layer in prunable_layers(model) if layer.name not in set(skip)]
    if not layers:
        raise ValueError("skip leaves no prunable layer to rank.")
    weights = [(layer.name, ops.convert_to_numpy(w)) for layer in layers
               for w in layer_registry.prunable_weights(layer, prune_depthwise=True)]
    results = mask_lib.global_magnitude_masks([value for _, value in weights], sparsity)
    zeros = {layer.name: 0 for layer in layers}
    for (name, _), (mask, _) in zip(weights, results):
        zeros[name] += int(mask.size - mask.sum())
    sizes = layer_sizes(model)
    return Allocation({name: zeros.get(name, 0) / n for name, n in sizes.items()}, sizes,
                      method="global_magnitude", target=sparsity)


def layer_sizes(model):
    return {layer.name: sum(int(np.prod(w.shape)) for w in
                            layer_registry.prunable_weights(layer, prune_depthwise=True))
            for layer in prunable_layers(model)}
