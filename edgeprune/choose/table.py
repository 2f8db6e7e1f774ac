"""`SensitivityTable`: a sensitivity scan's metrics, its cost model, and their CSV, Markdown and
plot forms."""

import csv
import dataclasses
import io

import numpy as np

from device_bench.fileio import atomic_write
from edgeprune.choose.units import unstructured_term  # noqa: F401  (used by the doctest)


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
