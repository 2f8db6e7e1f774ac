"""How each Keras layer type moves channel ids from its inputs to its outputs.

A rule receives the channel ids of a layer call's inputs (last axis, channels_last) and returns the
ids of its outputs, recording on the graph which weights index which channels. Rules match the
exact layer class: a subclass may compute anything in `call`, so it is treated as unknown, and an
unknown layer keeps every channel it touches. That is what makes the graph safe: a missing rule
costs prunable channels, never a wrong model.
"""

import keras
import numpy as np
from keras import layers

from edgeprune.model.keras_internals import LayerScale, numpy_ops
from edgeprune.model.naming import weight_key
from edgeprune.structured.masked_norm import ChannelMaskedLayerNormalization

# Activations that mix values across the channel axis: a removed channel would change the others.
_CHANNEL_MIXING_ACTIVATIONS = {"softmax", "log_softmax", "glu", "sparsemax"}


class UnsupportedLayer(Exception):
    """Raised by a rule when this particular call cannot be reasoned about."""


def register_channel_rule(layer_class, propagate, resize=None):
    """Teaches the channel graph a layer class (Torch-Pruning's `customized_pruners`).

    Args:
        layer_class: the exact class (subclasses are not matched: they may compute anything).
        propagate: `f(graph, layer, node, in_ids) -> [ids of each output]`, given the channel ids
            of the call's inputs (last axis). It records each weight that indexes channels with
            `graph.add_slice(layer, weight_key, axis, ids, role)` (roles: see `ParamSlice`),
            couples channels with `graph.unite(a, b)`, keeps them with `graph.block(ids)`, makes
            new ones with `graph.fresh(layer, count)`, and raises `UnsupportedLayer` for a call it
            cannot reason about (every channel it touches is then kept).
        resize: `f(layer, channels) -> config` with `channels` output channels, for a layer
            whose config holds its channel count (the rule calls `graph.mark_resizable`).

    >>> import keras
    >>> class Scale(keras.layers.Layer):  # one factor per channel
    ...     def build(self, shape):
    ...         self.factor = self.add_weight(name="factor", shape=(shape[-1],))
    ...     def call(self, x):
    ...         return x * self.factor
    >>> def scale_rule(graph, layer, node, in_ids):
    ...     graph.add_slice(layer, "factor", 0, in_ids[0], "pass")
    ...     return in_ids
    >>> register_channel_rule(Scale, scale_rule)
    >>> unregister_channel_rule(Scale)
    """
    _RULES[layer_class] = propagate
    if resize is not None:
        _RESIZERS[layer_class] = resize


def unregister_channel_rule(layer_class):
    """Removes the rule (and resize function) registered for `layer_class`."""
    _RULES.pop(layer_class, None)
    _RESIZERS.pop(layer_class, None)


def propagate(graph, layer, node, in_ids):
    """Returns the channel ids of each output tensor of one call of `layer`."""
    rule = _RULES.get(type(layer))
    try:
        if rule is None:
            raise UnsupportedLayer("no channel rule for this layer type")
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise UnsupportedLayer("only channels_last layouts are supported")
        return rule(graph, layer, node, in_ids)
    except UnsupportedLayer as error:
        outs = [graph.fresh(layer, channel_count(t), key=i) for i, t in enumerate(node.output_tensors)]
        graph.block_layer(layer, [*in_ids, *outs], str(error))
        return outs


def resized_config(layer, channels):
    """`layer`'s config with its output channel count set to `channels`."""
    resize = _RESIZERS.get(type(layer))
    if resize is None:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) marks its channels "
                         "resizable but has no resize function: pass resize= to "
                         "register_channel_rule.")
    return resize(layer, channels)


def _resize_filters(layer, channels):
    config = layer.get_config()
    if config.get("groups", 1) == config["filters"] > 1:  # depthwise as grouped convolution
        config["groups"] = channels
    return {**config, "filters": channels}


def _resize_config_key(key):
    return lambda layer, channels: {**layer.get_config(), key: channels}


def _resize_reshape(layer, channels):
    config = layer.get_config()
    return {**config, "target_shape": tuple(config["target_shape"][:-1]) + (channels,)}


def channel_count(tensor):
    return int(tensor.shape[-1]) if tensor.shape and tensor.shape[-1] is not None else 1


def _last_dim(tensor):
    if not tensor.shape or tensor.shape[-1] is None:
        raise UnsupportedLayer("tensor without a static last axis")
    return int(tensor.shape[-1])


def _is_last_axis(axis, rank):
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return any(a % rank == rank - 1 for a in axes)


def _output_channels(graph, layer, count):
    out = graph.fresh(layer, count)
    activation = getattr(layer, "activation", None)
    if activation is not None and keras.activations.serialize(activation) in _CHANNEL_MIXING_ACTIVATIONS:
        graph.block(out)  # e.g. a softmax classifier: a removed unit changes the others
    return out


# --- layers that create channels ---

def _convolution(graph, layer, node, in_ids):
    (ids,) = in_ids
    groups = getattr(layer, "groups", 1)
    if groups == layer.filters == len(ids) > 1:
        return _depthwise_as_grouped_convolution(graph, layer, ids)
    if groups != 1:
        raise UnsupportedLayer("grouped convolution: every group must keep the same channel count")
    out = _output_channels(graph, layer, layer.filters)
    transposed = isinstance(layer, (layers.Conv1DTranspose, layers.Conv2DTranspose,
                                    layers.Conv3DTranspose))
    in_axis, out_axis = (-1, -2) if transposed else (-2, -1)
    graph.add_slice(layer, "kernel", in_axis, ids, "in")
    graph.add_slice(layer, "kernel", out_axis, out, "out")
    graph.add_slice(layer, "bias", 0, out, "out")
    graph.mark_resizable(layer, out)
    return [out]


def _depthwise_as_grouped_convolution(graph, layer, ids):
    # One group per channel (ConvNeXt's depthwise Conv2D): output channel c reads input channel c.
    graph.add_slice(layer, "kernel", -1, ids, "pass")
    graph.add_slice(layer, "bias", 0, ids, "pass")
    graph.mark_resizable(layer, ids)
    return [ids]


def _dense(graph, layer, node, in_ids):
    if layer.lora_enabled or layer.quantization_mode:
        raise UnsupportedLayer("LoRA or quantized Dense layer")
    (ids,) = in_ids
    out = _output_channels(graph, layer, layer.units)
    graph.add_slice(layer, "kernel", 0, ids, "in")
    graph.add_slice(layer, "kernel", 1, out, "out")
    graph.add_slice(layer, "bias", 0, out, "out")
    graph.mark_resizable(layer, out)
    return [out]


def _separable(graph, layer, node, in_ids):
    (ids,) = in_ids
    out = _output_channels(graph, layer, layer.filters)
    graph.add_slice(layer, "depthwise_kernel", -2, ids, "pass")
    graph.add_slice(layer, "pointwise_kernel", -2, np.repeat(ids, layer.depth_multiplier), "in")
    graph.add_slice(layer, "pointwise_kernel", -1, out, "out")
    graph.add_slice(layer, "bias", 0, out, "out")
    graph.mark_resizable(layer, out)
    return [out]


# --- layers that keep channels apart ---

def _depthwise(graph, layer, node, in_ids):
    # Output channel c * multiplier + j is computed from input channel c alone.
    (ids,) = in_ids
    out = np.repeat(ids, layer.depth_multiplier)
    graph.add_slice(layer, "kernel", -2, ids, "pass")
    graph.add_slice(layer, "bias", 0, out, "pass")
    return [out]


def _batch_norm(graph, layer, node, in_ids):
    (ids,) = in_ids
    if not _is_last_axis(layer.axis, len(node.input_tensors[0].shape)):
        raise UnsupportedLayer("normalizes along an axis other than channels")
    for weight in ("gamma", "beta"):
        graph.add_slice(layer, weight, 0, ids, "pass")
    for weight in ("moving_mean", "moving_variance"):
        graph.add_slice(layer, weight, 0, ids, "stat")
    return [ids]


def _layer_norm(graph, layer, node, in_ids):
    (ids,) = in_ids
    if _is_last_axis(layer.axis, len(node.input_tensors[0].shape)):
        # Exactness: a zeroed channel still counts in the mean and variance of the others.
        # prune_channels and structure="channels" swap in ChannelMaskedLayerNormalization.
        raise UnsupportedLayer("normalizes across channels: removing one changes the others' "
                               "statistics (edgeprune's channel pruning masks them instead)")
    return [ids]


def _masked_layer_norm(graph, layer, node, in_ids):
    (ids,) = in_ids
    for weight in ("gamma", "beta"):
        graph.add_slice(layer, weight, 0, ids, "pass")
    graph.add_slice(layer, "channel_mask", 0, ids, "mask")
    return [ids]


def _softmax(graph, layer, node, in_ids):
    if _is_last_axis(layer.axis, len(node.input_tensors[0].shape)):
        raise UnsupportedLayer("softmax across channels")
    return in_ids


def _activation(graph, layer, node, in_ids):
    if keras.activations.serialize(layer.activation) in _CHANNEL_MIXING_ACTIVATIONS:
        raise UnsupportedLayer("activation mixes channels")
    return in_ids


def _prelu(graph, layer, node, in_ids):
    (ids,) = in_ids
    if layer.alpha.shape[-1] == len(ids) > 1:
        graph.add_slice(layer, "alpha", -1, ids, "pass")
    return in_ids


def _layer_scale(graph, layer, node, in_ids):
    # ConvNeXt's `x * gamma`, one factor per channel, sized by its config.
    (ids,) = in_ids
    graph.add_slice(layer, weight_key(layer, layer.gamma), 0, ids, "pass")
    graph.mark_resizable(layer, ids)
    return in_ids


def _rescaling(graph, layer, node, in_ids):
    if np.size(layer.scale) != 1 or np.size(layer.offset) != 1:
        raise UnsupportedLayer("per-channel scale or offset")
    return in_ids


def _same_channels(graph, layer, node, in_ids):
    return in_ids


# --- layers that combine or rearrange channels ---

def _elementwise(graph, layer, node, in_ids):
    channels = _last_dim(node.output_tensors[0])
    arguments = (*node.arguments.args, *node.arguments.kwargs.values())
    if not isinstance(layer, layers.Layer) and any(
            not isinstance(a, keras.KerasTensor) and np.size(a) > 1 for a in arguments):
        raise UnsupportedLayer("elementwise operation with a constant tensor")
    full = [ids for ids in in_ids if len(ids) == channels]
    for ids in in_ids:
        if len(ids) == channels:
            graph.unite(full[0], ids)
        elif len(ids) == 1:  # broadcast along channels: that input keeps its single channel
            graph.block(ids)
        else:
            raise UnsupportedLayer("inputs with incompatible channel counts")
    return [full[0]]


def _concatenate(graph, layer, node, in_ids):
    if _is_last_axis(layer.axis, len(node.output_tensors[0].shape)):
        return [np.concatenate(in_ids)]
    return _elementwise(graph, layer, node, in_ids)


def _reshape(graph, layer, node, in_ids):
    # Flat index i holds channel i % C before and after, so when the new last axis is a multiple
    # of C its position j holds channel j % C: Flatten → Dense reads each channel H·W times.
    (ids,) = in_ids
    out_channels = _last_dim(node.output_tensors[0])
    if out_channels % len(ids):
        raise UnsupportedLayer("reshape splits the channel axis")
    out = np.tile(ids, out_channels // len(ids))
    if isinstance(layer, layers.Reshape):
        graph.mark_resizable(layer, out)
    return [out]


_RULES, _RESIZERS = {}, {}


def _register_builtin_rules():
    def add(rule, *classes, resize=None):
        for layer_class in classes:
            register_channel_rule(layer_class, rule, resize)

    add(_convolution, layers.Conv1D, layers.Conv2D, layers.Conv3D, layers.Conv1DTranspose,
        layers.Conv2DTranspose, layers.Conv3DTranspose, resize=_resize_filters)
    add(_dense, layers.Dense, resize=_resize_config_key("units"))
    add(_separable, layers.SeparableConv1D, layers.SeparableConv2D, resize=_resize_filters)
    add(_depthwise, layers.DepthwiseConv1D, layers.DepthwiseConv2D)
    add(_batch_norm, layers.BatchNormalization)
    add(_layer_norm, layers.LayerNormalization)
    add(_masked_layer_norm, ChannelMaskedLayerNormalization)
    add(_layer_scale, LayerScale, resize=_resize_config_key("projection_dim"))
    add(_softmax, layers.Softmax)
    add(_activation, layers.Activation)
    add(_prelu, layers.PReLU)
    add(_rescaling, layers.Rescaling)
    add(_same_channels, layers.ReLU, layers.LeakyReLU, layers.ELU, layers.Dropout,
        layers.SpatialDropout1D, layers.SpatialDropout2D, layers.SpatialDropout3D,
        layers.GaussianNoise, layers.GaussianDropout, layers.AlphaDropout,
        layers.ActivityRegularization, layers.Identity,
        layers.MaxPooling1D, layers.MaxPooling2D, layers.MaxPooling3D,
        layers.AveragePooling1D, layers.AveragePooling2D, layers.AveragePooling3D,
        layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D,
        layers.GlobalAveragePooling3D, layers.GlobalMaxPooling1D, layers.GlobalMaxPooling2D,
        layers.GlobalMaxPooling3D, layers.ZeroPadding1D, layers.ZeroPadding2D,
        layers.ZeroPadding3D, layers.Cropping1D, layers.Cropping2D, layers.Cropping3D,
        layers.UpSampling1D, layers.UpSampling2D, layers.UpSampling3D)
    add(_elementwise, layers.Add, layers.Subtract, layers.Multiply, layers.Average,
        layers.Maximum, layers.Minimum, numpy_ops.Add, numpy_ops.Subtract, numpy_ops.Multiply,
        numpy_ops.Divide, numpy_ops.TrueDivide, numpy_ops.Maximum, numpy_ops.Minimum)
    add(_concatenate, layers.Concatenate, numpy_ops.Concatenate)
    add(_reshape, layers.Flatten, layers.Reshape, resize=_resize_reshape)


_register_builtin_rules()
