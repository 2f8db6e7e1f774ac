"""Granularities: what a pruning step removes together, and how it picks what to remove.

Each granularity is registered once, under the name `prune_low_magnitude(structure=...)` takes;
the wrapper, the controller, the sensitivity scan and the recipe schema read this registry, so a
new granularity is one class and one `register_granularity` call:

>>> import numpy as np
>>> class Rows(Granularity):
...     '''Prunes whole rows of each kernel (input features), by row L1 norm.'''
...     name = "doc_rows"
...     def layer_masks(self, weights, sparsity, options):
...         masks = []
...         for weight in weights:
...             norms = np.abs(weight.reshape(weight.shape[0], -1)).sum(axis=1)
...             keep = top_k_mask(norms, kept_count(norms.size, sparsity))
...             masks.append((np.broadcast_to(keep.reshape(-1, *[1] * (weight.ndim - 1)),
...                                           weight.shape).astype("float32"), 0.0))
...         return masks
>>> register_granularity(Rows())
>>> "doc_rows" in granularity_names()
True
>>> GRANULARITIES.unregister("doc_rows")
"""


from edgeprune.registry import Registry
from edgeprune.sparsity.masks import kept_count, top_k_mask  # noqa: F401  (helpers for subclasses)

# How far a ranking reaches: within one layer (or channel group), or across the whole model.
PRUNING_SCOPES = ("layer", "global")


class Granularity:
    """Base class of a granularity. Subclasses set `name` (and `options`, the keyword options
    `prune_low_magnitude` accepts for it, with their defaults) and implement `layer_masks`, or
    `masker` for a granularity that ranks across layers."""

    name = None
    options = {}

    def check_options(self, options):
        """`options` validated and completed with the defaults; raises ValueError naming any
        option this granularity does not take."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            owners = {name: [repr(g.name) for g in GRANULARITIES.items() if name in g.options]
                      for name in unknown}
            where = "; ".join(f"{name} applies to structure={' or '.join(names)} only"
                              for name, names in owners.items() if names)
            takes = ", ".join(sorted(self.options)) or "no options"
            raise ValueError(f"structure={self.name!r} does not take {', '.join(unknown)}"
                             f"{f' ({where})' if where else ''}; it takes: {takes}.")
        return {**self.options, **options}

    def wrap_model(self, model, pruning_schedule, options, skip_layers, prune_depthwise):
        """The model with its pruned layers wrapped, or None to let `prune_low_magnitude` wrap
        every prunable layer (the default). Channel pruning overrides this: which weights it
        masks follows from the model's graph."""
        return None

    def masker(self, model):
        """An object with `update(wrappers, sparsities)`, called at each pruning step with this
        granularity's due wrappers and each one's scheduled sparsity (a masker that ranks across
        wrappers takes one target from them). Built once per controller; the default prunes each
        wrapper alone through `layer_masks`."""
        return LayerByLayer(self)

    def layer_masks(self, weights, sparsity, options):
        """`[(mask, threshold)]` for one wrapper's weights (NumPy arrays) at `sparsity`."""
        raise NotImplementedError(f"granularity {self.name!r} must implement layer_masks or "
                                  "masker.")

    def prunes_at_first_step(self, options):
        """Whether masks are also computed at step 1, whatever the schedule (tfmot does so for
        N:M sparsity, whose pattern does not depend on the schedule's target)."""
        return False

    def gradient_terms(self, value, gradient, axis, options):
        """For granularities that rank by gradients: a per-index vector along `axis` that each
        training batch adds to the wrapper's accumulator (`keras.ops` tensors). None: unused."""
        return None


class LayerByLayer:
    """Prunes each wrapper alone, through its granularity's `layer_masks`."""

    def __init__(self, granularity):
        self.granularity = granularity

    def update(self, wrappers, sparsities):
        for wrapper, sparsity in zip(wrappers, sparsities):
            values = wrapper.masked_weight_values()
            wrapper.assign_masks(self.granularity.layer_masks(
                values, sparsity, wrapper.granularity_options), values)


GRANULARITIES = Registry(Granularity, "structure")


def register_granularity(granularity):
    """Makes `granularity` (a `Granularity` instance) available as `structure=granularity.name`
    everywhere: `prune_low_magnitude`, `sensitivity_scan` and recipes."""
    GRANULARITIES.register(granularity)


def get_granularity(name):
    return GRANULARITIES.get(name)


def granularity_names():
    return GRANULARITIES.names()
