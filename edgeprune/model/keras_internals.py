"""Every use of Keras' private API in edgeprune, in one place.

Keras 3 has no public way to walk a functional graph node by node, to replace a tracked sublayer,
or to read a layer's call sites; each function here wraps one such access, so a Keras release
that moves one breaks one line here, found by the tests, instead of code spread over the package.
"""

import contextlib
import copy

import keras
import numpy as np
from keras.src.applications.convnext import LayerScale  # noqa: F401  (re-exported)
from keras.src.backend.common.keras_tensor import any_symbolic_tensors
from keras.src.backend.common.stateless_scope import get_stateless_scope  # noqa: F401  (re-exported)
from keras.src.models.functional import Functional
from keras.src.ops import numpy as numpy_ops  # noqa: F401  (re-exported: keras.ops classes)


def is_functional(model):
    return isinstance(model, Functional)


def call_nested(layer, outer, args, kwargs, training):
    """`layer(*args, training=training, **kwargs)` from inside `outer.call`, where `outer` wraps
    `layer` and its own `Layer.__call__` has just processed the same arguments: `layer.call`
    directly when that did all `layer`'s would (same dtype policy, no mask argument, activity
    regularizer, torch hook or distribution, concrete tensors), else the plain call. On PyTorch a
    `Layer.__call__` costs about 80 us of Python on every step, 5% of a small CNN's step."""
    if not (layer.built and _nests_plainly(layer, outer)) or any_symbolic_tensors(args, kwargs):
        return layer(*args, training=training, **kwargs)
    if layer._call_has_training_arg:
        kwargs = {**kwargs, "training": training}
    return layer.call(*args, **kwargs)


def _nests_plainly(layer, outer):
    return (layer.dtype_policy.name == outer.dtype_policy.name
            and layer.autocast == outer.autocast and layer.input_dtype == outer.input_dtype
            and not layer._call_has_mask_arg and layer._call_context_args == {"training"}
            and layer.activity_regularizer is None and keras.distribution.distribution() is None
            and not getattr(layer, "_forward_hooks", None)
            and not getattr(layer, "_forward_pre_hooks", None))


def optimizer_slots(optimizer, variable, attribute_names):
    """The per-weight state `optimizer` keeps for `variable`: the item of each of its slot lists
    named in `attribute_names` (Keras optimizers index them as their trainable variables). Empty
    before the optimizer is built, or for a variable it does not train."""
    if not optimizer.built:
        return []
    index = optimizer._trainable_variables_indices.get(optimizer._var_key(variable))
    if index is None:
        return []
    slot_lists = [getattr(optimizer, name, None) for name in attribute_names]
    return [slots[index] for slots in slot_lists if slots and slots[index] is not None]


def sequential_functional(model):
    """The functional graph a built Sequential keeps, or None before it is built."""
    return getattr(model, "_functional", None)


def run_through_graph(model, inputs, operation_fn, call_fn):
    """Calls `model`'s graph on `inputs`, mapping each operation through `operation_fn` and
    calling it with `call_fn(operation, *args, **kwargs)`."""
    return model._run_through_graph(inputs, operation_fn=operation_fn, call_fn=call_fn)


def nodes_by_depth(functional):
    """`{depth: [node]}` of a functional graph; deeper nodes run first."""
    return functional._nodes_by_depth


def sublayers(layer):
    """The layers `layer` tracks directly (not recursively)."""
    return layer._layers


def attributes(layer):
    """`vars(layer)`, with the sublayers PyTorch's `Module.__setattr__` keeps apart in `_modules`
    (on the torch backend a Keras layer is a `torch.nn.Module`)."""
    return {**vars(layer), **getattr(layer, "_modules", {})}


def all_sublayers(model):
    """Every layer inside `model`, recursively, without `model` itself."""
    return list(model._flatten_layers(include_self=False))


def untrack(owner, layer):
    """Stops `owner` from tracking `layer` (before an attribute is replaced by another layer)."""
    owner._tracker.untrack(layer)


def inbound_nodes(layer):
    """The nodes where `layer` was called in a graph (empty for a layer never called in one)."""
    return getattr(layer, "_inbound_nodes", [])


def producer(tensor):
    """The operation that made a symbolic tensor, or None for a model input."""
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.operation


def attention_projections(layer):
    """The query, key, value and output projections of a `MultiHeadAttention`."""
    return [layer._query_dense, layer._key_dense, layer._value_dense, layer._output_dense]


def is_graph_model(operation):
    """Sequential or functional: a model whose layer graph can be walked and rebuilt."""
    return isinstance(operation, (Functional, keras.Sequential))


def declared_input_shape(layer):
    """The `input_shape=` a layer was created with (Keras 2 style), or None."""
    return getattr(layer, "_input_shape_arg", None)


def declare_input_shape(layer, shape):
    """Gives `layer` the `input_shape=` a Sequential reads from its first layer to build itself,
    without the deprecation warning passing `input_shape=` again would print."""
    layer._input_shape_arg = shape


def build_as_called(layer, args, kwargs):
    """Builds `layer` as its first call `layer(*args, **kwargs)` would: Keras matches the call's
    tensor arguments to `build`'s arguments by name (`query=` to `query_shape`), which no public
    function exposes."""
    from keras.src.layers.layer import CallSpec

    args, kwargs = keras.tree.map_structure(_as_tensor, (args, dict(kwargs)))
    spec = CallSpec(layer._call_signature, layer._call_context_args, args, kwargs)
    with layer._open_name_scope():
        layer._maybe_build(spec)


def _as_tensor(value):
    """NumPy arrays as tensors (what a layer's call converts them to before building)."""
    return keras.ops.convert_to_tensor(value) if isinstance(value, np.ndarray) else value


@contextlib.contextmanager
def names_unchanged():
    """Within the block, models and layers are built without advancing Keras' automatic naming
    counters (`dense`, `dense_1`, ...), so a trial build (a recipe's checks before a run) does
    not rename the layers of the model built next."""
    from keras.src.backend.common import global_state

    uids = global_state.get_global_attribute("object_name_uids")
    saved = None if uids is None else copy.copy(uids)
    try:
        yield
    finally:
        global_state.set_global_attribute("object_name_uids", saved)
