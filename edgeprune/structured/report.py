"""Per-layer channels, parameters and multiply-accumulates before and after `shrink`."""

import dataclasses
import numbers


from edgeprune.model.cost import deployed_params, layer_macs
from edgeprune.model.keras_internals import inbound_nodes
from edgeprune.structured.graph import ChannelGraph
from edgeprune.sparsity.wrapper import leaf_layers
from edgeprune.sparsity.strip import stripped


@dataclasses.dataclass(frozen=True)
class LayerChange:
    name: str
    kind: str
    channels: tuple  # (before, after): last axis of the layer's output
    params: tuple
    macs: tuple


@dataclasses.dataclass(frozen=True)
class ShrinkReport:
    """What `shrink` changed, layer by layer, and which layers kept their channels and why."""

    layers: list
    unprunable: list

    def total(self, field):
        """`(before, after)` sum of "params" or "macs" over all layers."""
        return tuple(int(sum(getattr(row, field)[i] for row in self.layers)) for i in (0, 1))

    def __str__(self):
        """Totals and ratios first, then a Markdown table of the layers that hold parameters or
        lost channels, then the unprunable layers and why."""
        params, macs = self.total("params"), self.total("macs")
        shrunk = sum(row.channels[0] != row.channels[1] for row in self.layers)
        lines = [f"parameters {_pair(params)} ({_fewer(params)}), MACs {_pair(macs)} "
                 f"({_fewer(macs)}); {shrunk} of {len(self.layers)} layers lost channels, "
                 f"{len(self.unprunable)} unprunable", "",
                 "| layer | type | channels | params | MACs |", "|---|---|---|---|---|"]
        for row in self.layers:
            if row.params[0] or row.channels[0] != row.channels[1]:
                lines.append(f"| {row.name} | {row.kind} | {_pair(row.channels)} | "
                             f"{_pair(row.params)} | {_pair(row.macs)} |")
        lines.append(f"| total | | | {_pair(params)} | {_pair(macs)} |")
        lines += [f"unprunable: {u.layer} ({u.kind}): {u.reason}" for u in self.unprunable]
        return "\n".join(lines)


def shrink_report(before, after):
    """Compares two models with the same layer names, typically a pruned model and its `shrink`.

    >>> import keras, edgeprune as ep
    >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3),
    ...                           keras.layers.Flatten(), keras.layers.Dense(10)])
    >>> pruned = ep.prune_channels(model, sparsity=0.5)
    >>> ep.shrink_report(pruned, ep.shrink(pruned)).total("macs")
    (5472, 2736)
    """
    before = stripped(before)  # wrappers' names are not the layers' names in `after`
    after_layers = {layer.name: layer for layer in leaf_layers(after)}
    rows = []
    for layer in leaf_layers(before):
        new = after_layers.get(layer.name)
        if new is None:
            continue
        rows.append(LayerChange(
            layer.name, type(layer).__name__,
            (_channels(layer), _channels(new)),
            (deployed_params(layer), new.count_params()),
            (layer_macs(layer), layer_macs(new))))
    return ShrinkReport(rows, ChannelGraph(before).unprunable)


def _channels(layer):
    nodes = inbound_nodes(layer)
    return nodes[0].output_tensors[0].shape[-1] if nodes else None


def _pair(values):
    before, after = (f"{v:,}" if isinstance(v, numbers.Integral) else str(v) for v in values)
    return f"{before} → {after}" if values[0] != values[1] else before


def _fewer(values):
    before, after = values
    if not after or before == after:
        return "unchanged" if before == after else "all removed"
    return f"{before / after:.2f}x fewer"
