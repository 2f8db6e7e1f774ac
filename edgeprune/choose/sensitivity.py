"""Sensitivity scans: how much a metric drops when one layer (or channel group) alone is pruned.

The scan prunes each unit one-shot at every level, evaluates, and puts the weights back. It works
on ONE copy of the model (the model passed in is never changed): weights are restored in place,
nothing is rebuilt or recompiled between evaluations, so `eval_fn`'s compiled predict or evaluate
function is traced once. Each call owns its copy, so scans of different models may run in
parallel threads.
"""

import csv
import dataclasses
import io

import keras
import numpy as np
from keras import ops
from tqdm.auto import tqdm

from device_bench.fileio import atomic_write
from edgeprune.sparsity import masks as mask_lib
from edgeprune.sparsity import layer_registry
from edgeprune.model.rebuild import copy_layer, rebuild
from edgeprune.sparsity.wrapper import leaf_layers
from edgeprune.structured import ChannelGraph, channel_masks, channel_scores
from edgeprune.structured.masked_norm import deployed_params, prunable_copy

DEFAULT_SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
STRUCTURES = ("unstructured", "channels")
STRUCTURE_OPTIONS = {"unstructured": ("block_size", "block_pooling_type"),
                     "channels": ("criterion",)}


@dataclasses.dataclass
class SensitivityTable:
    """The result of `sensitivity_scan`: the metric for each unit at each sparsity.

    Attributes:
        baseline: the metric of the unpruned model.
        sparsities: the scanned levels, ascending.
        metrics: `{unit name: [metric at each level]}`, units in model order.
        sizes: `{unit name: prunable weights (unstructured) or channels (channels)}`.
        terms: the cost model, one entry per weight that pruning a unit shrinks:
            `{"params": size, "macs": dense MACs, "slices": [{"length": L, "counts": {unit: c}}]}`
            where each slice is an axis of length L of which `c` positions belong to `unit`.
            The weight keeps `size * prod(1 - sum(c * sparsity[unit]) / L)` over its slices
            (a Conv2D kernel between two pruned channel groups shrinks on both axes).
        fixed_params, fixed_macs: parameters and MACs of the rest of the model, which pruning
            the scanned units does not change (budgets in `allocate` count them).
        structure: "unstructured" or "channels".
        higher_is_better: whether a larger metric is better (accuracy) or worse (loss).

    >>> sizes = {"a": 10, "b": 10}
    >>> table = SensitivityTable(0.9, (0.5,), {"a": [0.8], "b": [0.9]}, sizes,
    ...                          [unstructured_term("a", 10, 10), unstructured_term("b", 10, 10)])
    >>> table.ranking(0.5)
    ['a', 'b']
    """

    baseline: float
    sparsities: tuple
    metrics: dict
    sizes: dict
    terms: list
    fixed_params: int = 0
    fixed_macs: int = 0
    structure: str = "unstructured"
    higher_is_better: bool = True

    @property
    def units(self):
        return list(self.metrics)

    @property
    def params(self):
        """`{unit: parameters one unit's full removal saves}`, to first order (from dense)."""
        return self._first_order("params")

    @property
    def macs(self):
        """`{unit: MACs one unit's full removal saves}`, to first order (from dense)."""
        return self._first_order("macs")

    def _first_order(self, key):
        saved = dict.fromkeys(self.units, 0.0)
        for term in self.terms:
            for piece in term["slices"]:
                for unit, count in piece["counts"].items():
                    saved[unit] += term[key] * count / piece["length"]
        return saved

    def remaining(self, sparsity, key):
        """Parameters (key "params") or MACs ("macs") the model keeps at `{unit: sparsity}`."""
        total = self.fixed_params if key == "params" else self.fixed_macs
        for term in self.terms:
            kept = term[key]
            for piece in term["slices"]:
                removed = sum(c * sparsity.get(u, 0.0) for u, c in piece["counts"].items())
                kept *= 1.0 - removed / piece["length"]
            total += kept
        return total

    def drop(self, unit):
        """How much worse than the baseline each level leaves the metric (positive = worse)."""
        values = np.asarray(self.metrics[unit], dtype=float)
        return self.baseline - values if self.higher_is_better else values - self.baseline

    def ranking(self, sparsity):
        """Unit names, most sensitive first, at one of the scanned sparsities."""
        if sparsity not in self.sparsities:
            raise ValueError(f"sparsity must be one of the scanned levels {self.sparsities}, "
                             f"got {sparsity}.")
        level = list(self.sparsities).index(sparsity)
        return sorted(self.units, key=lambda unit: -self.drop(unit)[level])

    def to_dict(self):
        """Plain Python values (JSON-ready); `SensitivityTable.from_dict` reads them back."""
        return dataclasses.asdict(self) | {"sparsities": list(self.sparsities)}

    @classmethod
    def from_dict(cls, data):
        return cls(**{**data, "sparsities": tuple(data["sparsities"])})

    def to_csv(self, path=None):
        """One row per (unit, sparsity); written atomically to `path` when given."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["unit", "size", "sparsity", "metric", "drop"])
        for unit in self.units:
            for level, metric, drop in zip(self.sparsities, self.metrics[unit], self.drop(unit)):
                writer.writerow([unit, self.sizes[unit], level, f"{metric:.6g}", f"{drop:.6g}"])
        text = buffer.getvalue()
        if path is not None:
            atomic_write(path, text)
        return text

    def to_markdown(self):
        """A Markdown table: one row per unit, one column per sparsity (metric values)."""
        header = ["unit", "size"] + [f"{level:g}" for level in self.sparsities]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for unit in self.units:
            cells = [unit, str(self.sizes[unit])] + [f"{m:.4f}" for m in self.metrics[unit]]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join([f"baseline: {self.baseline:.4f}", ""] + lines)

    def plot(self, ax=None):
        """Metric against sparsity, one line per unit, baseline dashed; returns the axes."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.subplots(figsize=(6, 4))[1]
        for unit in self.units:
            ax.plot(self.sparsities, self.metrics[unit], marker="o", label=unit)
        ax.axhline(self.baseline, color="gray", linestyle="--", label="unpruned")
        ax.set_xlabel("sparsity of the unit" if self.structure == "unstructured"
                      else "fraction of the group's channels removed")
        ax.set_ylabel("metric")
        ax.legend(fontsize="small")
        return ax


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
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}.")
    if not callable(eval_fn):
        raise ValueError("eval_fn must be a callable eval_fn(model) -> float.")
    allowed = STRUCTURE_OPTIONS[structure]
    unknown = sorted(set(structure_options) - set(allowed))
    if unknown:
        raise ValueError(f"sensitivity_scan got {unknown}, which structure={structure!r} does "
                         f"not take; its options are {allowed}.")
    work = working_copy(model, copy_layer if structure == "unstructured" else prunable_copy)
    if structure == "unstructured":
        units = layer_units(work, layers, **structure_options)
    else:
        units = channel_units(work, layers, **structure_options)
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
        fixed_macs=sum(macs_by_layer(work).values()) - sum(t["macs"] for t in terms),
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


def prunable_layers(model, names=None):
    """The leaf layers of `model` that have weights to prune, in model order (or those named)."""
    candidates = [layer for layer in leaf_layers(model) if layer.weights]
    if names is None:
        return [layer for layer in candidates if layer_registry.is_prunable(layer)]
    by_name = {layer.name: layer for layer in candidates}
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise ValueError(f"layers names layers with no prunable weights or not in the model: "
                         f"{unknown}; its layers with weights are {sorted(by_name)}.")
    chosen = [by_name[name] for name in names]
    for layer in chosen:
        if not layer_registry.prunable_weights(layer, prune_depthwise=True):
            raise ValueError(f"layers: '{layer.name}' has no prunable weight.")
    return chosen


def macs_by_layer(model):
    """Dense multiply-accumulates of each layer's prunable weights: `{layer name: MACs}`.

    A kernel weight is used once per output position (prod of the output's middle dimensions);
    one call is counted (a layer shared by several calls is counted once), and layers never
    called in a graph (subclassed models) count each weight once.
    """
    return {layer.name: _uses_per_weight(layer) * _prunable_size(layer)
            for layer in leaf_layers(model) if _has_prunable(layer)}


class LayerUnit:
    """A layer's prunable weights, pruned by magnitude (the core's `magnitude_mask`)."""

    def __init__(self, layer, block_size=(1, 1), block_pooling_type="AVG"):
        self.name = layer.name
        self.weights = layer_registry.prunable_weights(layer, prune_depthwise=True)
        self.block_size = tuple(block_size)
        self.block_pooling_type = block_pooling_type
        self.size = sum(int(np.prod(w.shape)) for w in self.weights)
        self.macs = _uses_per_weight(layer) * self.size

    def values(self):
        return [ops.convert_to_numpy(w) for w in self.weights]

    def prune(self, sparsity):
        for weight, value in zip(self.weights, self.values()):
            mask, _ = mask_lib.magnitude_mask(value, sparsity, self.block_size,
                                              self.block_pooling_type)
            weight.assign(value * mask.astype(value.dtype))

    def restore(self, values):
        for weight, value in zip(self.weights, values):
            weight.assign(value)


def unstructured_term(unit, size, macs):
    """The cost term of `size` weights that unstructured pruning of `unit` removes one by one."""
    return {"params": size, "macs": macs, "slices": [{"length": 1, "counts": {unit: 1}}]}


def cost_terms(units):
    """The `SensitivityTable.terms` of scanned units (see there)."""
    if units and isinstance(units[0], ChannelUnit):
        return channel_terms(units[0].graph, [unit.name for unit in units])
    return [unstructured_term(unit.name, unit.size, unit.macs) for unit in units]


def layer_units(model, names=None, block_size=(1, 1), block_pooling_type="AVG"):
    return [LayerUnit(layer, block_size, block_pooling_type)
            for layer in prunable_layers(model, names)]


class ChannelUnit:
    """One coupled channel group of a `ChannelGraph`: its lowest-scoring channels are zeroed."""

    def __init__(self, graph, group, scores):
        self.name = group.name
        self.size = len(group)
        self.graph, self._group, self._scores = graph, group, scores
        self._variables = {(id(s.layer), s.weight): _variable(s.layer, s.weight)
                           for s in graph.slices if s.zeroable}

    def values(self):
        return {key: ops.convert_to_numpy(v) for key, v in self._variables.items()}

    def prune(self, sparsity):
        remove = np.zeros(self.graph.num_atoms, bool)
        kept = mask_lib.kept_count(self.size, sparsity)
        order = np.argsort(self._scores[self._group.atoms], kind="stable")
        remove[self._group.atoms[order[:self.size - kept]]] = True
        for layer_id, masks in channel_masks(self.graph, remove).items():
            for name, mask in masks.items():
                variable = self._variables[(layer_id, name)]
                variable.assign(ops.convert_to_numpy(variable) * mask)

    def restore(self, values):
        for key, value in values.items():
            self._variables[key].assign(value)


def channel_units(model, names=None, criterion="l1"):
    graph = ChannelGraph(model)
    scores = channel_scores(graph, criterion)
    groups = {group.name: group for group in graph.groups}
    if names is not None:
        unknown = sorted(set(names) - set(groups))
        if unknown:
            raise ValueError(f"layers names channel groups the model does not have: {unknown}; "
                             f"its groups are {sorted(groups)}.")
        groups = {name: groups[name] for name in names}
    return [ChannelUnit(graph, group, scores) for group in groups.values()]


def channel_terms(graph, group_names):
    """Cost terms of every weight a channel group slices (producer, consumers, BN statistics)."""
    owner = np.full(graph.num_atoms, -1)
    names = [group.name for group in graph.groups]
    for index, group in enumerate(graph.groups):
        if group.name in group_names:
            owner[group.atoms] = index
    by_weight = {}
    for s in graph.slices:
        if s.role == "mask":  # exists only while pruning: shrink drops it
            continue
        owners, counts = np.unique(owner[s.atoms], return_counts=True)
        piece = {"length": len(s.atoms), "counts": {names[o]: int(c) for o, c in
                                                     zip(owners, counts) if o >= 0}}
        if piece["counts"]:
            by_weight.setdefault((s.layer, s.weight), []).append(piece)
    terms = []
    for (layer, weight_name), pieces in by_weight.items():
        variable = _variable(layer, weight_name)
        size = int(np.prod(variable.shape))
        kernels = layer_registry.prunable_weights(layer, prune_depthwise=True) if _has_prunable(
            layer) else []
        macs = size * _uses_per_weight(layer) if any(variable is k for k in kernels) else 0
        terms.append({"params": size, "macs": macs, "slices": pieces})
    return terms


def _variable(layer, name):
    return next(w for w in layer.weights if w.name == name)


def _has_prunable(layer):
    try:
        return bool(layer_registry.prunable_weights(layer, prune_depthwise=True))
    except ValueError:
        return False


def _prunable_size(layer):
    return sum(int(np.prod(w.shape)) for w in layer_registry.prunable_weights(layer, True))


def _uses_per_weight(layer):
    # One call's output positions: a rebuilt model's layers may keep nodes of earlier graphs.
    nodes = getattr(layer, "_inbound_nodes", [])
    return max([int(np.prod(tensor.shape[1:-1])) for node in nodes
                for tensor in node.output_tensors] + [1])


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
