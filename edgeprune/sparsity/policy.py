"""Pruning policies: which layers of a model to prune, for a given runtime."""

import keras

from edgeprune.model import keras_internals as internals
from edgeprune.model.rebuild import functional_graph
from edgeprune.sparsity.wrapper import PruneLowMagnitude

L = keras.layers


class PruneForLatencyOnXNNPack:
    """Prunes only what XNNPACK's sparse inference can use; the checks of tfmot's policy of the
    same name, on Keras 3 graphs.

    XNNPACK runs a float model's middle sparse (in NCHW layout) when it starts with a 3x3,
    stride 2 convolution over 3 channels, padded by a `ZeroPadding2D(1)` before a 'valid'
    convolution (its first NCHW kernel pads 1 on every side; 'same' padding pads one side only
    at stride 2), ends with a `GlobalAveragePooling2D`, and holds in between only operators that
    have NCHW kernels. It then needs >= 2/3 of the 1x1 convolution weights zero, and it runs on
    ARM only. `ensure_model_supports_pruning` checks that shape of graph on every input and
    output branch and raises a ValueError naming what does not fit; `allow_pruning` wraps only
    the 1x1 convolutions.

    >>> pruned = ep.prune_low_magnitude(model, pruning_policy=ep.PruneForLatencyOnXNNPack())  # doctest: +SKIP
    """

    def allow_pruning(self, layer):
        return _is_pointwise(layer)

    def ensure_model_supports_pruning(self, model):
        if not internals.is_graph_model(model):
            raise ValueError("PruneForLatencyOnXNNPack checks a model's layer graph: it takes a "
                             "Sequential or functional model, not a subclassed one.")
        graph = _LayerGraph(model)
        starts = graph.search(graph.inputs, lambda layer: _starts_sparse_subgraph(layer, graph),
                              graph.consumers)
        if not starts:
            raise ValueError(
                "PruneForLatencyOnXNNPack needs every input branch to start with a 3x3, stride 2 "
                "Conv2D over 3 channels with padding='valid', right after a ZeroPadding2D(1) "
                "(XNNPACK's sparse-inference entry; 'same' padding does not qualify).")
        ends = graph.search(graph.outputs, _ends_sparse_subgraph, graph.producers)
        if not ends:
            raise ValueError("PruneForLatencyOnXNNPack needs a GlobalAveragePooling2D on every "
                             "output branch (XNNPACK's sparse-inference exit).")

        def inside(layer):
            if id(layer) in ends:
                return True
            if not _runs_sparse(layer, graph):
                raise ValueError(
                    f"Layer '{layer.name}' ({type(_unwrapped(layer)).__name__}) lies between "
                    "the first convolution and the GlobalAveragePooling2D but has no kernel in "
                    "XNNPACK's sparse path, so PruneForLatencyOnXNNPack cannot use this model.")
            return False

        graph.search([c for start in starts.values() for c in graph.consumers(start)], inside,
                     graph.consumers)


class _LayerGraph:
    """The operations of a model's graph with their producers and consumers, nested models
    walked into (tfmot reads the same from Keras 2's inbound and outbound nodes)."""

    def __init__(self, model):
        self._producers, self._consumers = {}, {}
        functional = functional_graph(model)
        self.inputs = [internals.producer(tensor) for tensor in functional.inputs]
        self.outputs = self._walk(functional, dict(zip(map(id, functional.inputs), self.inputs)))

    def producers(self, operation):
        return self._producers.get(id(operation), [])

    def consumers(self, operation):
        return self._consumers.get(id(operation), [])

    def search(self, sources, stop, step):
        """tfmot's traversal: from `sources`, follow `step` (consumers or producers) until
        `stop(operation)`; returns `{id: operation}` where every path stopped, or `{}` when a
        path ends without stopping."""
        queue, seen, found = list(sources), {id(s) for s in sources}, {}
        while queue:
            operation = queue.pop(0)
            if stop(operation):
                found[id(operation)] = operation
                continue
            following = step(operation)
            if not following:
                return {}
            for other in following:
                if id(other) not in seen:
                    seen.add(id(other))
                    queue.append(other)
        return found

    def _walk(self, functional, made):
        """Records each node of `functional`; `made` maps a tensor to its producing operation."""
        by_depth = internals.nodes_by_depth(functional)
        for depth in sorted(by_depth, reverse=True):
            for node in by_depth[depth]:
                if node.is_input:
                    continue
                inputs = [made[id(tensor)] for tensor in node.input_tensors]
                operation = node.operation
                if internals.is_graph_model(operation):
                    nested = functional_graph(operation)
                    outputs = self._walk(nested, dict(zip(map(id, nested.inputs), inputs)))
                else:
                    for producer in inputs:
                        _add_once(self._producers, operation, producer)
                        _add_once(self._consumers, producer, operation)
                    outputs = [operation] * len(node.output_tensors)
                made.update(zip(map(id, node.output_tensors), outputs))
        return [made[id(tensor)] for tensor in functional.outputs]


def _add_once(edges, key, value):
    values = edges.setdefault(id(key), [])
    if not any(v is value for v in values):
        values.append(value)


def _unwrapped(layer):
    return layer.layer if isinstance(layer, PruneLowMagnitude) else layer


def _zero_padding_before(layer, graph, padding):
    """Whether `layer`'s only producer is a ZeroPadding2D padding `padding` on every side."""
    producers = graph.producers(layer)
    return (len(producers) == 1 and isinstance(producers[0], L.ZeroPadding2D)
            and tuple(map(tuple, producers[0].padding)) == ((padding,) * 2,) * 2)


def _starts_sparse_subgraph(layer, graph):
    """A 3x3, stride 2, 'valid' Conv2D over 3 channels right after a ZeroPadding2D(1)."""
    conv = _unwrapped(layer)
    return (type(conv) is L.Conv2D and tuple(conv.kernel.shape[:3]) == (3, 3, 3)
            and tuple(conv.strides) == (2, 2) and conv.padding == "valid"
            and _zero_padding_before(layer, graph, 1))


def _ends_sparse_subgraph(layer):
    return isinstance(_unwrapped(layer), L.GlobalAveragePooling2D)


def _is_pointwise(layer):
    layer = _unwrapped(layer)
    return (type(layer) is L.Conv2D and tuple(layer.kernel_size) == (1, 1)
            and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
            and layer.groups == 1)


def _depthwise_runs_sparse(node, graph):
    """3x3 or 5x5, no dilation, depth multiplier 1: 'same' at stride 1, or 'valid' at stride 1
    or 2 after a ZeroPadding2D of half the kernel."""
    layer = _unwrapped(node)
    size = tuple(layer.kernel_size)
    if (size not in ((3, 3), (5, 5)) or layer.depth_multiplier != 1
            or tuple(layer.dilation_rate) != (1, 1)):
        return False
    strides = tuple(layer.strides)
    if layer.padding == "same":
        return strides == (1, 1)
    return strides in ((1, 1), (2, 2)) and _zero_padding_before(node, graph, size[0] // 2)


_ALWAYS_SPARSE = (L.Add, L.Multiply, L.ZeroPadding2D, L.ReLU, L.LeakyReLU, L.ELU, L.Dropout)
_SPARSE_ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "sigmoid")
# `x + y` and friends on Keras tensors: keras.ops operations, tfmot's TFOpLambda add/mul/sub.
_SPARSE_OPS = (internals.numpy_ops.Add, internals.numpy_ops.Subtract,
               internals.numpy_ops.Multiply)


def _runs_sparse(node, graph):
    """Whether XNNPACK has an NCHW (sparse-path) kernel for `node` (its subgraph.c list)."""
    layer = _unwrapped(node)
    if isinstance(layer, _ALWAYS_SPARSE + _SPARSE_OPS):
        return True
    if isinstance(layer, L.DepthwiseConv2D):
        return _depthwise_runs_sparse(node, graph)
    if isinstance(layer, L.Conv2D):
        return _is_pointwise(layer)
    if isinstance(layer, L.GlobalAveragePooling2D):
        return layer.keepdims
    if isinstance(layer, L.BatchNormalization):
        return layer.axis in (-1, 3)
    if isinstance(layer, L.UpSampling2D):
        return layer.interpolation == "bilinear"
    if isinstance(layer, L.Activation):
        return keras.activations.serialize(layer.activation) in _SPARSE_ACTIVATIONS
    return False
