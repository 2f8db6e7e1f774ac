"""Dependency graph over a Keras model's channel axes, and the coupled channel groups it implies.

Every channel of every tensor gets an integer id. A layer that makes new channels (a Conv2D's
filters, a Dense layer's units) allocates fresh ids; a layer that keeps channels apart (activations,
pooling, BatchNormalization, DepthwiseConv2D) passes its input ids through; Concatenate lays its
inputs' ids side by side; elementwise merges (Add, Multiply, ...) unite the ids of matching
channels. After the walk, ids united with each other form one *atom*: a channel that can only be
removed everywhere at once. Atoms made by the same set of layers form a `ChannelGroup`, the unit a
pruning criterion ranks within.

Every weight that indexes a channel is recorded as a `ParamSlice` (which weight, which axis, which
atom at each position), so pruning, scoring and shrinking never special-case an architecture.
"""

import dataclasses

import keras
import numpy as np

from edgeprune.model.keras_internals import is_graph_model, nodes_by_depth
from edgeprune.model.naming import weight_arrays, weight_by_key
from edgeprune.model.rebuild import functional_graph
from edgeprune.sparsity.wrapper import PruneLowMagnitude
from edgeprune.structured import layer_rules

# A ParamSlice's role says what removing the channel does to that weight:
#   "out":  the layer creates the channel (a Conv2D kernel's output axis and its bias).
#   "in":   the layer reads the channel (a Conv2D kernel's input axis, a Dense kernel's rows).
#   "pass": a per-channel parameter of a layer that keeps channels apart (BN gamma, depthwise kernel).
#   "stat": per-channel statistics (BN moving mean/variance): sliced by shrink, never zeroed or scored.
#   "mask": which channels a layer's statistics count (ChannelMaskedLayerNormalization): zeroed
#           with the channel, never scored, dropped by shrink.
ROLES = ("out", "in", "pass", "stat", "mask")


@dataclasses.dataclass
class ParamSlice:
    """One axis of one weight of one layer, with the channel id (later: atom) at each position."""

    layer: keras.layers.Layer
    weight: str
    axis: int
    ids: np.ndarray
    role: str
    atoms: np.ndarray = None

    @property
    def zeroable(self):
        return self.role != "stat"

    @property
    def scored(self):
        """Whether the weight's values say how important the channel is."""
        return self.role not in ("stat", "mask")


@dataclasses.dataclass
class ChannelGroup:
    """Atoms made by the same layers; a criterion ranks atoms against the others of their group."""

    layers: tuple
    atoms: np.ndarray

    @property
    def name(self):
        return "+".join(layer.name for layer in self.layers)

    def __len__(self):
        return len(self.atoms)


@dataclasses.dataclass(frozen=True)
class Unprunable:
    """A layer whose channels (and the channels coupled to them) cannot be removed, and why."""

    layer: str
    kind: str
    reason: str


class ChannelGraph:
    """Coupled channel groups of a Functional or Sequential Keras model.

    Args:
        model: a built Functional or Sequential model (nested models are followed).
        skip_layers: names of layers whose output channels must be kept as they are.

    Layers whose channel semantics are unknown (custom layers, attention, recurrent layers,
    normalizations that mix channels) keep every channel they touch; `unprunable` lists them with
    the reason.

    >>> import keras, edgeprune as ep
    >>> x = keras.Input((8, 8, 3))
    >>> a = keras.layers.Conv2D(16, 3, padding="same", name="a")(x)
    >>> b = keras.layers.Conv2D(16, 3, padding="same", name="b")(x)
    >>> y = keras.layers.Add()([a, b])
    >>> y = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(y))
    >>> graph = ep.ChannelGraph(keras.Model(x, y))
    >>> [(group.name, len(group)) for group in graph.groups]
    [('a+b', 16)]
    """

    def __init__(self, model, skip_layers=()):
        functional = _functional_of(model)
        self.model = model
        self.slices = []
        self.unprunable = []
        self._parent = []
        self._creator = []  # layer that allocated each id; None for model inputs and unknown outputs
        self._blocked = set()  # ids that must stay
        self._fresh_cache = {}
        self._seen_inputs = {}
        self._slice_keys = set()
        self._resizable = {}  # id(layer) -> (layer, ids along the output channel axis)
        self._layer_outputs = {}  # id(layer) -> (layer, [ids of each output tensor])
        input_ids = [self._new_ids(layer_rules.channel_count(t), None) for t in functional.inputs]
        for ids in [*input_ids, *self._walk(functional, input_ids)]:
            self.block(ids)  # the model's interface keeps its shapes
        self._skip(skip_layers)
        self._finalize()

    # --- building blocks used by layer_rules ---

    def fresh(self, layer, count, key=0):
        """New channel ids made by `layer`; a shared layer gets the same ids on every call."""
        cache_key = (id(layer), key, count)
        if cache_key not in self._fresh_cache:
            self._fresh_cache[cache_key] = self._new_ids(count, layer)
        return self._fresh_cache[cache_key]

    def unite(self, ids_a, ids_b):
        """Couples channel ids_a[i] with ids_b[i] for every i."""
        for a, b in zip(ids_a.tolist(), ids_b.tolist()):
            root_a, root_b = self._find(a), self._find(b)
            if root_a != root_b:
                self._parent[root_b] = root_a

    def block(self, ids):
        """Keeps channels `ids`, and everything coupled to them."""
        self._blocked.update(np.asarray(ids).tolist())

    def block_layer(self, layer, ids_list, reason):
        """Keeps every channel in `ids_list` and reports `layer` as unprunable."""
        for ids in ids_list:
            self.block(ids)
        entry = Unprunable(layer.name, type(layer).__name__, reason)
        if entry not in self.unprunable:  # a shared layer is reported once
            self.unprunable.append(entry)

    def add_slice(self, layer, weight, axis, ids, role):
        """Records that `layer.<weight>` indexes channels `ids` along `axis` (first call only: a
        shared layer's later calls have their inputs united with the first's)."""
        variable = weight_by_key(layer, weight)
        if variable is None:
            return
        axis %= len(variable.shape)  # one spelling per axis: slices are looked up by it
        key = (id(layer), weight, axis)
        if key not in self._slice_keys:
            self._slice_keys.add(key)
            self.slices.append(ParamSlice(layer, weight, axis, np.asarray(ids), role))

    def mark_resizable(self, layer, ids):
        """Records the output-channel ids whose count is written in `layer`'s config."""
        self._resizable[id(layer)] = (layer, np.asarray(ids))

    # --- queries ---

    def resizable_atoms(self, layer):
        """Atom of each output channel of a layer whose config holds its channel count, or None."""
        entry = self._resizable.get(id(layer))
        return None if entry is None else self._atom_index[entry[1]]

    def weight_values(self):
        """`{id(layer): {weight name: array}}` for every layer with channel-indexed weights."""
        layers = {id(s.layer): s.layer for s in self.slices}
        return {key: weight_arrays(layer) for key, layer in layers.items()}

    def slices_of(self, layer):
        return [s for s in self.slices if s.layer is layer]

    def summary(self):
        lines = [f"{len(self.groups)} prunable channel groups, "
                 f"{int(self.prunable.sum())} prunable channels of {self.num_atoms}"]
        lines += [f"  {g.name}: {len(g)} channels" for g in self.groups]
        if self.unprunable:
            lines.append("unprunable layers:")
            lines += [f"  {u.layer} ({u.kind}): {u.reason}" for u in self.unprunable]
        return "\n".join(lines)

    # --- internals ---

    def _new_ids(self, count, layer):
        start = len(self._parent)
        self._parent.extend(range(start, start + count))
        self._creator.extend([layer] * count)
        return np.arange(start, start + count)

    def _find(self, i):
        parent = self._parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def _walk(self, functional, input_ids):
        ids = {id(t): a for t, a in zip(functional.inputs, input_ids)}
        by_depth = nodes_by_depth(functional)
        for depth in sorted(by_depth, reverse=True):
            for node in by_depth[depth]:
                if node.is_input:
                    continue
                operation = node.operation
                if isinstance(operation, PruneLowMagnitude):
                    operation = operation.layer  # masks do not change what a channel means
                in_ids = [ids[id(t)] for t in node.input_tensors]
                if is_graph_model(operation):
                    out_ids = self._walk(_functional_of(operation), in_ids)
                else:
                    self._unite_with_earlier_calls(operation, in_ids)
                    out_ids = layer_rules.propagate(self, operation, node, in_ids)
                for tensor, tensor_ids in zip(node.output_tensors, out_ids):
                    ids[id(tensor)] = tensor_ids
                self._layer_outputs.setdefault(id(operation), (operation, []))[1].extend(out_ids)
        return [ids[id(t)] for t in functional.outputs]

    def _unite_with_earlier_calls(self, operation, in_ids):
        """A shared layer's weights index the channels of every call's inputs alike."""
        if not getattr(operation, "weights", None):
            return
        earlier = self._seen_inputs.setdefault(id(operation), in_ids)
        if earlier is in_ids:
            return
        for a, b in zip(earlier, in_ids):
            if a.shape == b.shape:
                self.unite(a, b)

    def _skip(self, skip_layers):
        names = set(skip_layers)
        for layer, outputs in self._layer_outputs.values():
            if layer.name in names:
                names.discard(layer.name)
                for ids in outputs:
                    self.block(ids)
        if names:
            raise ValueError(f"skip_layers names layers that are not in the model: {sorted(names)}. "
                             "Pass names of the model's layers (see model.summary()).")

    def _finalize(self):
        roots = np.array([self._find(i) for i in range(len(self._parent))], dtype=np.int64)
        unique_roots, atom_index = np.unique(roots, return_inverse=True)
        self._atom_index = atom_index
        self.num_atoms = len(unique_roots)
        blocked = np.zeros(self.num_atoms, bool)
        blocked[atom_index[list(self._blocked)]] = True
        has_creator = np.zeros(self.num_atoms, bool)
        creators = [set() for _ in range(self.num_atoms)]
        for i, layer in enumerate(self._creator):
            if layer is not None:
                creators[atom_index[i]].add(layer)
                has_creator[atom_index[i]] = True
        self.prunable = ~blocked & has_creator
        for s in self.slices:
            s.atoms = atom_index[s.ids]
        by_creators = {}
        for atom in np.flatnonzero(self.prunable):
            key = tuple(sorted(creators[atom], key=lambda layer: layer.name))
            by_creators.setdefault(key, []).append(atom)
        self.groups = [ChannelGroup(layers, np.array(atoms)) for layers, atoms in by_creators.items()]
        self.atom_group = np.full(self.num_atoms, -1)
        for g, group in enumerate(self.groups):
            self.atom_group[group.atoms] = g


def _functional_of(model):
    if is_graph_model(model):
        return functional_graph(model)
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Structured pruning needs a keras.Model; got {type(model).__name__} {model!r:.80}. "
            "Load a saved model first with keras.saving.load_model(path).")
    raise ValueError(
        f"Structured pruning needs a Functional or Sequential model; got {type(model).__name__} "
        f"'{model.name}', a subclassed model whose graph cannot be seen. Rebuild it with the "
        "functional API (keras.Model(inputs, outputs)) or keras.Sequential.")
