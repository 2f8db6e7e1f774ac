"""The pruning core: schedules, the wrapper, masks, granularities, the controller, callbacks,
`prune_low_magnitude`, strip, the layer registry and policies. Imports nothing from the packages
above it (structured, choose, quantize, recipe)."""

from edgeprune.sparsity import unstructured  # noqa: F401  (registers the "unstructured" granularity)
