"""Fake quantization as the TFLite converter quantizes: int8 weights per channel, symmetric in
[-127, 127]; 8-bit activations over a tracked range; straight-through gradients."""

from keras import ops

_WEIGHT_INT_MAX = 127.0  # symmetric "narrow range" int8, as the converter quantizes weights
_ACTIVATION_LEVELS = 255.0


def fake_quantize_weights(kernel, channel_axes):
    """Per-channel symmetric int8 fake quantization with a straight-through gradient.

    `channel_axes` are the kernel axes that index TFLite's quantization channels (the output axis
    for Conv/Dense; input channel and multiplier for DepthwiseConv2D).
    """
    reduce_axes = tuple(a for a in range(len(kernel.shape)) if a not in channel_axes)
    max_abs = ops.max(ops.abs(kernel), axis=reduce_axes, keepdims=True)
    scale = ops.maximum(max_abs, 1e-12) / _WEIGHT_INT_MAX
    quantized = ops.clip(ops.round(kernel / scale), -_WEIGHT_INT_MAX, _WEIGHT_INT_MAX) * scale
    return kernel + ops.stop_gradient(quantized - kernel)


def fake_quantize_activations(x, range_min, range_max):
    """Asymmetric 8-bit fake quantization over [range_min, range_max] (which contains 0).

    The gradient passes straight through inside the range and is zero outside it, as in TF's
    FakeQuantWithMinMaxVars.
    """
    scale = ops.maximum(range_max - range_min, 1e-12) / _ACTIVATION_LEVELS
    zero_point = ops.round(-range_min / scale)
    clipped = ops.clip(x, range_min, range_max)
    levels = ops.clip(ops.round(clipped / scale) + zero_point, 0.0, _ACTIVATION_LEVELS)
    return clipped + ops.stop_gradient((levels - zero_point) * scale - clipped)
