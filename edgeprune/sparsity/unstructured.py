"""The "unstructured" granularity: single weights by magnitude, or tfmot's variants of it,
blocks (`block_size`), N:M patterns (`sparsity_m_by_n`) and one ranking across layers
(`pruning_scope="global"`), which tfmot spells as options of the same call."""

from edgeprune.sparsity import masks
from edgeprune.sparsity.granularity import (PRUNING_SCOPES, Granularity, LayerByLayer,
                                            register_granularity)

BLOCK_POOLING_TYPES = ("AVG", "MAX")


class Unstructured(Granularity):
    name = "unstructured"
    options = {"block_size": (1, 1), "block_pooling_type": "AVG", "sparsity_m_by_n": None,
               "pruning_scope": "layer"}

    def check_options(self, options):
        options = super().check_options(options)
        options["block_size"] = validate_pair(options["block_size"], "block_size", minimum=1)
        if options["block_pooling_type"] not in BLOCK_POOLING_TYPES:
            raise ValueError(f"block_pooling_type must be one of {BLOCK_POOLING_TYPES}, got "
                             f"{options['block_pooling_type']!r}.")
        m_by_n = options["sparsity_m_by_n"]
        if m_by_n is not None:
            m_by_n = options["sparsity_m_by_n"] = validate_pair(m_by_n, "sparsity_m_by_n", 1)
            if m_by_n[0] >= m_by_n[1]:
                raise ValueError(f"sparsity_m_by_n=(m, n) needs m < n, got {m_by_n}.")
            if options["block_size"] != (1, 1):
                raise ValueError("block_size and sparsity_m_by_n cannot be combined: choose one.")
        if options["pruning_scope"] not in PRUNING_SCOPES:
            raise ValueError(f"pruning_scope must be one of {PRUNING_SCOPES}, got "
                             f"{options['pruning_scope']!r}.")
        if options["pruning_scope"] == "global" and m_by_n:
            raise ValueError("N:M sparsity is a fixed per-group pattern; it has no global "
                             "ranking. Use pruning_scope='layer' with sparsity_m_by_n.")
        return options

    def prunes_at_first_step(self, options):
        return options["sparsity_m_by_n"] is not None

    def layer_masks(self, weights, sparsity, options):
        if options["sparsity_m_by_n"]:
            return [masks.m_by_n_mask(w, options["sparsity_m_by_n"]) for w in weights]
        return [masks.magnitude_mask(w, sparsity, options["block_size"],
                                     options["block_pooling_type"]) for w in weights]

    def masker(self, model):
        return _UnstructuredMasker(self)


class _UnstructuredMasker(LayerByLayer):
    """Wrappers with pruning_scope="global" are ranked together, the others one by one."""

    def update(self, wrappers, sparsities):
        by_scope = {scope: [] for scope in PRUNING_SCOPES}
        for wrapper, sparsity in zip(wrappers, sparsities):
            by_scope[wrapper.granularity_options["pruning_scope"]].append((wrapper, sparsity))
        alone, together = by_scope["layer"], by_scope["global"]
        super().update([w for w, _ in alone], [s for _, s in alone])
        if together:
            self._update_global([w for w, _ in together], together[-1][1])

    @staticmethod
    def _update_global(wrappers, sparsity):
        ranked = [wrapper.masked_weight_values() for wrapper in wrappers]
        values = [value for per_wrapper in ranked for value in per_wrapper]
        options = wrappers[0].granularity_options
        results = masks.global_magnitude_masks(values, sparsity, options["block_size"],
                                               options["block_pooling_type"])
        start = 0
        for wrapper, values in zip(wrappers, ranked):
            wrapper.assign_masks(results[start:start + len(values)], values)
            start += len(values)


def validate_pair(value, name, minimum):
    try:
        pair = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of integers, got {value!r}.") from None
    if len(pair) != 2 or min(pair) < minimum:
        raise ValueError(f"{name} must be a pair of integers >= {minimum}, got {value!r}.")
    return pair


register_granularity(Unstructured())
