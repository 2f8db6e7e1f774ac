"""Per-layer sparsities that meet a budget: sensitivity-driven allocation and the usual heuristics.

`allocate` reads a `SensitivityTable` and spends the budget where the metric suffers least: each
unit's drop-versus-removed-cost curve is replaced by its lower convex hull, and hull segments
are taken cheapest first (the Lagrangian solution of "least total drop for this much removed",
`edgeprune.choose.hull`), the last one partially, so the budget is met exactly. The usual
heuristics (`uniform_allocation`, `global_magnitude_allocation`) are in
`edgeprune.choose.heuristics`. Every result is an `Allocation`: per-layer
sparsities usable as `prune_low_magnitude(model, pruning_schedule=allocation.schedules(...))`
and as a plain dict (`to_dict`) for recipes.
"""

import dataclasses

import numpy as np

from edgeprune.choose.hull import hull_segments_by_slope, spend
from edgeprune.choose.sensitivity import working_copy
from edgeprune.choose.units import channel_units
from edgeprune.sparsity import masks as mask_lib
from edgeprune.structured.masked_norm import prunable_copy

BUDGETS = ("sparsity", "params", "macs", "bytes", "latency")


@dataclasses.dataclass
class Allocation:
    """Per-unit sparsities (fraction of weights, or of channels, removed) and how they were chosen.

    Attributes:
        sparsity: `{layer or channel-group name: sparsity}`; 0 means "leave unpruned".
        sizes: `{name: prunable weights or channels}`, to count what survives.
        structure: "unstructured" or "channels".
        method: "sensitivity", "uniform" or "global_magnitude".
        budget, target: the budget kind and value it was chosen for.
        predicted_drop: for "sensitivity", the metric drop the scan predicts (sum over units).
        round_to: for budget "latency", `{group: SIMD step}` the kept counts are multiples of
            (`apply_channel_allocation` uses it).
        predicted_latency_ms: for budget "latency", what the latency model predicts.
        measured_latency_ms, latency_rounds: for a plan checked on the device
            (`plan_for_latency`), its measured latency and every plan measured on the way.

    >>> allocation = Allocation({"conv": 0.0, "dense": 0.9}, {"conv": 100, "dense": 900})
    >>> round(allocation.overall_sparsity(), 3)
    0.81
    """

    sparsity: dict
    sizes: dict
    structure: str = "unstructured"
    method: str = "sensitivity"
    budget: str = "sparsity"
    target: float = None
    predicted_drop: float = None
    round_to: dict = None
    predicted_latency_ms: float = None
    measured_latency_ms: float = None
    latency_rounds: list = None

    def __post_init__(self):
        # Plain Python numbers (the scan and the greedy search give NumPy scalars): they print
        # as numbers and go into JSON and YAML (`yaml.safe_dump`) as they are.
        self.sparsity = {str(name): float(value) for name, value in self.sparsity.items()}
        self.sizes = {str(name): int(value) for name, value in self.sizes.items()}
        if self.round_to is not None:
            self.round_to = {str(name): int(step) for name, step in self.round_to.items()}
        for field in ("target", "predicted_drop", "predicted_latency_ms", "measured_latency_ms"):
            if getattr(self, field) is not None:
                setattr(self, field, float(getattr(self, field)))

    def kept(self):
        """`{name: weights (or channels) kept}`, counted as the pruning core rounds them."""
        return {name: self.sizes[name] if s == 0 else mask_lib.kept_count(self.sizes[name], s)
                for name, s in self.sparsity.items()}

    def overall_sparsity(self):
        """Fraction of all the units' weights (or channels) removed."""
        return 1.0 - sum(self.kept().values()) / sum(self.sizes.values())

    def schedules(self, template):
        """`{layer name: schedule}` for `prune_low_magnitude`: `template` with each layer's target.

        Layers allocated 0 are left out, so they stay unwrapped.

        >>> import edgeprune as ep
        >>> allocation = Allocation({"conv": 0.0, "dense": 0.9}, {"conv": 100, "dense": 900})
        >>> schedules = allocation.schedules(ep.PolynomialDecay(0.0, 0.5, 0, end_step=100))
        >>> {name: schedule.final_sparsity for name, schedule in schedules.items()}
        {'dense': 0.9}
        """
        if self.structure != "unstructured":
            raise ValueError("schedules() drives unstructured pruning; apply a channel "
                             "allocation with apply_channel_allocation(model, allocation).")
        return {name: with_target(template, s) for name, s in self.sparsity.items() if s > 0}

    def to_dict(self):
        """Plain values (JSON/YAML-ready); `Allocation.from_dict` reads them back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**data)


def apply_channel_allocation(model, allocation, criterion="l1", round_to=1, min_channels=1):
    """A copy of `model` with each channel group's weakest channels zeroed to its allocation.

    The copy computes what `shrink` of it computes: shrink it, then fine-tune the smaller model.
    `criterion` ranks channels within a group, as in the scan ("l1", "l2" or "bn_gamma");
    `round_to` and `min_channels` round each group's kept count as `prune_channels` does; an
    allocation for a latency budget brings its own per-group `round_to`.

    >>> table = ep.sensitivity_scan(model, accuracy, structure="channels")  # doctest: +SKIP
    >>> small = ep.shrink(ep.apply_channel_allocation(model, ep.allocate(table, 0.5)))  # doctest: +SKIP
    """
    if allocation.structure != "channels":
        raise ValueError("apply_channel_allocation needs a channel allocation (from a "
                         "structure='channels' scan); apply unstructured ones with "
                         "prune_low_magnitude(model, pruning_schedule=allocation.schedules(...)).")
    pruned = working_copy(model, prunable_copy)
    chosen = [name for name, sparsity in allocation.sparsity.items() if sparsity > 0]
    if allocation.round_to is not None:
        round_to = allocation.round_to
    for unit in channel_units(pruned, chosen, criterion, round_to, min_channels):
        unit.prune(allocation.sparsity[unit.name])
    return pruned


def with_target(schedule, sparsity):
    """A copy of `schedule` that ends at `sparsity` (its final or constant target replaced).

    >>> import edgeprune as ep
    >>> with_target(ep.ConstantSparsity(0.5, begin_step=0), 0.8).target_sparsity
    0.8
    """
    config = schedule.get_config()
    for key in ("final_sparsity", "target_sparsity"):
        if key in config:
            config[key] = float(sparsity)
            if config.get("initial_sparsity", 0.0) > sparsity:
                config["initial_sparsity"] = float(sparsity)
            return type(schedule).from_config(config)
    raise ValueError(f"with_target: {type(schedule).__name__} has no final_sparsity or "
                     "target_sparsity to replace; use ConstantSparsity or PolynomialDecay.")


def allocate(table, target, budget="sparsity", skip=(), max_sparsity=None, bytes_per_weight=4,
             latency_model=None):
    """Chooses per-unit sparsities that meet `budget` exactly while losing least metric.

    Args:
        table: a `SensitivityTable` from `sensitivity_scan`.
        target: for budget "sparsity", the fraction of the scanned units' weights (or channels)
            to remove; for "params", "macs" and "bytes", what the whole model may keep
            (parameters, dense multiply-accumulates, or `bytes_per_weight` x parameters, an
            estimate of the weight payload of a `.tflite` stored sparse or gzip-compressed); for
            "latency", the milliseconds the model may take on the latency model's device.
        budget: one of "sparsity", "params", "macs", "bytes", "latency".
        skip: units to leave unpruned (e.g. the first and last layer).
        max_sparsity: cap for every unit (default: the highest scanned level).
        bytes_per_weight: 4 for float32, 2 for float16, 1 for int8 (budget "bytes").
        latency_model: for budget "latency", a `LatencyModel` of the scanned model
            (`measure_latency_model`); kept channel counts are rounded up to each group's SIMD
            step, where latency does not change, and the prediction stays at or under `target`.

    Each unit's sparsity stays within the scanned range, and the result meets the budget
    exactly under the table's cost model (`SensitivityTable.terms`), up to the rounding of each
    unit's kept count to a whole weight or channel. For channels the model follows the
    coupling: a kernel between two pruned groups shrinks on both axes.

    >>> allocation = ep.allocate(table, target=0.9)  # doctest: +SKIP
    >>> pruned = ep.prune_low_magnitude(
    ...     model, pruning_schedule=allocation.schedules(ep.PolynomialDecay(0, 0.9, 0, 1000)))  # doctest: +SKIP
    """
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}.")
    if (budget == "latency") != (latency_model is not None):
        raise ValueError("budget='latency' needs latency_model=ep.measure_latency_model(model, "
                         "...), and a latency_model is for budget='latency' only.")
    if budget == "latency" and table.structure != "channels":
        raise ValueError("budget='latency' allocates channels: scan with "
                         "structure='channels'.")
    if latency_model is not None:
        table = _with_latency_cost(table, latency_model)
    unknown = sorted(set(skip) - set(table.units))
    if unknown:
        raise ValueError(f"skip names units the scan does not have: {unknown}.")
    cap = table.sparsities[-1] if max_sparsity is None else float(max_sparsity)
    if not 0.0 < cap < 1.0:
        raise ValueError(f"max_sparsity must lie in (0, 1), got {max_sparsity}.")
    needed = _cost_to_remove(table, budget, target, bytes_per_weight)
    segments = hull_segments_by_slope(table, _element_costs(table, budget, bytes_per_weight),
                                       skip, cap)
    removed_by = _measure(table, budget, bytes_per_weight)
    most = sum(segment.length for segment in segments)
    most_removed = removed_by(spend(segments, most)[0])
    if most_removed < needed * (1 - 1e-9):
        # A sparsity target is what to remove; every other budget's is what remains.
        reachable = (f"at most {most_removed / sum(table.sizes.values()):.4g}"
                     if budget == "sparsity" else f"at least {target + needed - most_removed:.4g}")
        raise ValueError(f"target {target} ({budget}) needs more than every unit at "
                         f"max_sparsity={cap} removes: the reachable target is {reachable}; "
                         "choose one there, allow a higher max_sparsity, or scan higher "
                         "sparsities.")
    # Segments are ordered by first-order cost; where costs couple (a kernel between two pruned
    # channel groups), the exact removal is found by bisection on how far down the list to go.
    low, high = 0.0, most
    for _ in range(60):
        middle = (low + high) / 2
        if removed_by(spend(segments, middle)[0]) < needed:
            low = middle
        else:
            high = middle
    sparsity, predicted = spend(segments, high)
    sparsity = {unit: sparsity.get(unit, 0.0) for unit in table.units}
    latency = {}
    if latency_model is not None:
        sparsity = _fill_up(table, latency_model.rounded(sparsity), target, latency_model, cap)
        latency = {"round_to": {unit: latency_model.round_to.get(unit, 1) for unit in table.units},
                   "predicted_latency_ms": latency_model.predict_ms(sparsity)}
    return Allocation(sparsity=sparsity, sizes=dict(table.sizes), structure=table.structure,
                      budget=budget, target=target, predicted_drop=predicted, **latency)


def _measure(table, budget, bytes_per_weight):
    """`f(sparsity) -> amount removed` in the budget's units, exact under the table's model."""
    if budget == "latency":
        dense = table.latency_model.predict_ms({})
        return lambda sparsity: dense - table.latency_model.predict_ms(sparsity)
    if budget == "sparsity":
        return lambda sparsity: sum(table.sizes[u] * s for u, s in sparsity.items())
    key = "macs" if budget == "macs" else "params"
    factor = bytes_per_weight if budget == "bytes" else 1
    dense = table.remaining({}, key)
    return lambda sparsity: factor * (dense - table.remaining(sparsity, key))


def _element_costs(table, budget, bytes_per_weight):
    """What removing one element (weight or channel) of each unit saves, in budget units."""
    if budget == "sparsity":
        return {unit: 1.0 for unit in table.units}
    if budget == "latency":
        return table.latency_per_channel
    per_element = table.macs if budget == "macs" else table.params
    factor = bytes_per_weight if budget == "bytes" else 1.0
    return {unit: factor * per_element[unit] / table.sizes[unit] for unit in table.units}


def _cost_to_remove(table, budget, target, bytes_per_weight):
    if budget == "sparsity":
        if not 0.0 <= target < 1.0:
            raise ValueError(f"target must be a sparsity in [0, 1) for budget='sparsity', "
                             f"got {target}.")
        return target * sum(table.sizes.values())
    factor = bytes_per_weight if budget == "bytes" else 1
    if budget == "latency":
        dense = table.latency_model.predict_ms({})
    else:
        dense = factor * table.remaining({}, "macs" if budget == "macs" else "params")
    if not 0 < target <= dense:
        raise ValueError(f"target must be in (0, {dense}] for budget={budget!r} (the dense "
                         f"model's value), got {target}.")
    return dense - target


def _with_latency_cost(table, latency_model):
    """`table` carrying the latency model and each group's first-order latency per channel: what
    removing the group down to the table's last level saves, per channel removed."""
    unknown = sorted(set(table.units) - set(latency_model.sizes))
    if unknown:
        raise ValueError(f"the latency model has no channel groups {unknown}: measure it on the "
                         "model that was scanned.")
    dense, deepest = latency_model.predict_ms({}), table.sparsities[-1]
    table = dataclasses.replace(table)
    table.latency_model = latency_model
    table.latency_per_channel = {
        unit: (dense - latency_model.predict_ms({unit: deepest})) / (deepest * table.sizes[unit])
        for unit in table.units}
    return table


def _fill_up(table, sparsity, target_ms, latency_model, cap):
    """Gives channels back, one SIMD step at a time, while the prediction stays within
    `target_ms`: the bisection stops at the first plan under the target, which the steps can put
    well under it. Each step goes to the group whose scan drop falls most per millisecond."""
    levels = [0.0, *[s for s in table.sparsities if s <= cap]]

    def drop(unit, s):
        curve = [0.0, *table.drop(unit)[:len(levels) - 1]]
        return float(np.interp(s, levels, curve))

    current = latency_model.predict_ms(sparsity)
    while True:
        best = None
        for unit, s in sparsity.items():
            size, step = table.sizes[unit], latency_model.round_to.get(unit, 1)
            kept = round(size * (1 - s))
            if s <= 0 or kept >= size:
                continue
            trial = {**sparsity, unit: 1.0 - min(size, kept + step) / size}
            cost = latency_model.predict_ms(trial) - current
            if current + cost > target_ms:
                continue
            gain = (drop(unit, s) - drop(unit, trial[unit])) / max(cost, 1e-9)
            if best is None or gain > best[0]:
                best = (gain, trial, current + cost)
        if best is None:
            return sparsity
        _, sparsity, current = best
