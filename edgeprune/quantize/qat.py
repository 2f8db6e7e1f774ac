"""Sparsity-preserving quantization-aware training (QAT) for Keras 3.

`quantize_model` returns a copy of a model in which every Conv/DepthwiseConv/Dense layer sees its
kernel through int8 fake quantization, and every layer output that the full-int8 TFLite graph
requantizes goes through 8-bit activation fake quantization. Fine-tuning that copy teaches the
weights to live on the int8 grid; `export_tflite` then converts it to the same full-int8 graph
that post-training quantization produces (activation ranges are calibrated on representative data
at conversion, as for PTQ; the ranges tracked in training only shape the fine-tuning).

How the fake quantization mirrors the TFLite converter:

- Weights: symmetric, per output channel, integers in [-127, 127], scale = max|w| / 127 -- what the
  converter does for CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED. `strip_quantization` snaps the
  kernels onto that grid, so the converter's own quantization of them is exact.
- Sparsity: a mask (`kernel != 0` when the wrapper is built) multiplies the kernel before fake
  quantization, and 0 quantizes to exactly 0, so pruned zeros stay zero through training and
  conversion (plain QAT lets them drift back).
- BatchNormalization: the converter folds BN into the preceding kernel as a per-output-channel
  factor c. Per-channel symmetric quantization commutes with it, fq(c * w) = c * fq(w), so
  quantizing the unfolded kernel is exactly right and needs no special BN layer. Only the output
  of the fused conv + BN (+ ReLU) exists in TFLite, so only that tensor gets activation fake
  quantization.
"""

import keras
from keras import ops

from edgeprune.model.keras_internals import all_sublayers, inbound_nodes, producer
from edgeprune.model.rebuild import copy_layer, rebuild
from edgeprune.sparsity.wrapper import PruneLowMagnitude

_WEIGHT_INT_MAX = 127.0  # symmetric "narrow range" int8, as the converter quantizes weights
_ACTIVATION_LEVELS = 255.0
# Layers whose int8 TFLite op writes a tensor with its own scale (pooling, Flatten and Reshape keep
# their input's scale and need no fake quantization).
_OUTPUT_QUANTIZED = (keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Activation,
                     keras.layers.LeakyReLU, keras.layers.Add, keras.layers.Subtract,
                     keras.layers.Multiply, keras.layers.Average, keras.layers.Concatenate,
                     keras.layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling1D)


# Layers whose kernels the converter quantizes per output channel (CONV_2D, DEPTHWISE_CONV_2D,
# FULLY_CONNECTED; Conv1D converts to CONV_2D). Other layers with weights stay float in training.
_KERNEL_LAYERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                  keras.layers.Dense)


def _has_quantizable_kernel(layer):
    return isinstance(layer, _KERNEL_LAYERS)


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


@keras.saving.register_keras_serializable(package="edgeprune")
class QuantizeWrapper(keras.layers.Wrapper):
    """Runs a layer with int8 fake-quantized kernel and/or output during training and inference.

    Args:
        layer: the layer to wrap. Its kernel (Conv1D/2D, DepthwiseConv2D, Dense) is quantized
            per output channel; other layers only get their output quantized.
        quantize_output: whether the output goes through 8-bit activation fake quantization (off
            when the next layer fuses into this one in TFLite, e.g. a BatchNormalization).
        preserve_sparsity: keep the kernel's zeros (as found when the wrapper is built) at zero.
        ema_decay: decay of the moving averages that track the output range during training.

    Example:

    >>> import keras, numpy as np
    >>> wrapped = QuantizeWrapper(keras.layers.Dense(3))
    >>> y = wrapped(np.ones((2, 4), "float32"), training=True)
    >>> tuple(y.shape)
    (2, 3)
    """

    def __init__(self, layer, quantize_output=True, preserve_sparsity=True, ema_decay=0.99,
                 **kwargs):
        super().__init__(layer, **kwargs)
        self.quantize_output = quantize_output
        self.preserve_sparsity = preserve_sparsity
        self.ema_decay = ema_decay
        self.quantizes_kernel = _has_quantizable_kernel(layer)
        if self.quantizes_kernel and getattr(layer, "lora_enabled", False):
            raise ValueError(f"layer {layer.name!r} has LoRA enabled; merge or disable LoRA first.")

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        if self.quantizes_kernel:
            kernel = self.layer.kernel

            def current_nonzeros(shape, dtype=None):
                # Evaluated where Keras creates variables (eagerly), even when the wrapper is
                # first built while a training step is being traced.
                return ops.cast(ops.not_equal(kernel, 0), dtype or kernel.dtype)

            self.sparsity_mask = self.add_weight(
                name="sparsity_mask", shape=kernel.shape, trainable=False,
                initializer=current_nonzeros if self.preserve_sparsity else "ones")
        if self.quantize_output:
            self.output_min = self.add_weight(name="output_min", shape=(), initializer="zeros",
                                              trainable=False)
            self.output_max = self.add_weight(name="output_max", shape=(), initializer="zeros",
                                              trainable=False)
            self.range_updates = self.add_weight(name="range_updates", shape=(),
                                                 initializer="zeros", trainable=False)
        self.built = True

    def quantized_kernel(self):
        """The masked, int8 fake-quantized kernel the wrapped layer computes with."""
        kernel = self.layer.kernel * self.sparsity_mask
        depthwise = isinstance(self.layer, keras.layers.DepthwiseConv2D)
        channel_axes = (2, 3) if depthwise else (len(kernel.shape) - 1,)
        return fake_quantize_weights(kernel, channel_axes)

    def call(self, inputs, training=None, **kwargs):
        if self.quantizes_kernel:
            outputs = self._kernel_call(inputs)
        else:
            outputs = self.layer(inputs, training=training, **kwargs)
        if not self.quantize_output:
            return outputs
        if training:
            self._update_range(outputs)
        # Before the first training step there is no range to quantize with.
        return ops.cond(
            self.range_updates > 0,
            lambda: fake_quantize_activations(outputs, self.output_min, self.output_max),
            lambda: outputs)

    def _kernel_call(self, inputs):
        layer, kernel = self.layer, self.quantized_kernel()
        if isinstance(layer, keras.layers.Dense):
            outputs = ops.matmul(inputs, kernel)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            outputs = ops.depthwise_conv(inputs, kernel, strides=layer.strides,
                                         padding=layer.padding, data_format=layer.data_format,
                                         dilation_rate=layer.dilation_rate)
        else:
            outputs = layer.convolution_op(inputs, kernel)
        if layer.use_bias:
            bias = layer.bias
            if getattr(layer, "data_format", "channels_last") == "channels_first":
                bias = ops.reshape(bias, (1, -1) + (1,) * (len(outputs.shape) - 2))
            outputs = outputs + bias
        return layer.activation(outputs) if layer.activation is not None else outputs

    def _update_range(self, outputs):
        batch_min = ops.minimum(ops.min(outputs), 0.0)
        batch_max = ops.maximum(ops.max(outputs), 0.0)
        first = ops.equal(self.range_updates, 0.0)
        decay = self.ema_decay
        self.output_min.assign(ops.where(first, batch_min,
                                         decay * self.output_min + (1 - decay) * batch_min))
        self.output_max.assign(ops.where(first, batch_max,
                                         decay * self.output_max + (1 - decay) * batch_max))
        self.range_updates.assign(self.range_updates + 1.0)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"quantize_output": self.quantize_output,
                       "preserve_sparsity": self.preserve_sparsity,
                       "ema_decay": self.ema_decay})
        return config


@keras.saving.register_keras_serializable(package="edgeprune")
class QuantizeAnnotate(keras.layers.Wrapper):
    """Marks a layer for `quantize_apply`; until then it computes exactly what the layer computes.

    Example:

    >>> import keras
    >>> inputs = keras.Input((4,))
    >>> outputs = QuantizeAnnotate(keras.layers.Dense(3))(inputs)
    >>> type(keras.Model(inputs, outputs).layers[1]).__name__
    'QuantizeAnnotate'
    """

    def call(self, inputs, training=None, **kwargs):
        return self.layer(inputs, training=training, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def quantize_annotate_layer(layer):
    """Marks `layer` for quantization-aware training by `quantize_apply` (tfmot's name)."""
    return QuantizeAnnotate(layer)


def quantize_annotate_model(model):
    """A copy of `model` with every layer annotated for `quantize_apply` (tfmot's name)."""
    return rebuild(model, lambda layer: QuantizeAnnotate(copy_layer(layer)))


def quantize_apply(model, preserve_sparsity=True, ema_decay=0.99):
    """A quantization-aware copy of `model` in which only the annotated layers are quantized.

    Annotate layers with `quantize_annotate_layer` when building the model, e.g. to fine-tune
    only the layers most hurt by int8 rounding; `export_tflite` still quantizes the others after
    training, as post-training quantization does. `quantize_model` quantizes every supported
    layer. Arguments as for `quantize_model`.

    >>> import keras
    >>> inputs = keras.Input((4,))
    >>> hidden = keras.layers.Dense(8)(inputs)
    >>> outputs = quantize_annotate_layer(keras.layers.Dense(3))(hidden)
    >>> qat = quantize_apply(keras.Model(inputs, outputs))
    >>> [type(layer).__name__ for layer in qat.layers[1:]]
    ['Dense', 'QuantizeWrapper']
    """
    if not any(isinstance(layer, QuantizeAnnotate)
               for layer in all_sublayers(model)):
        raise ValueError("model has no layer annotated with quantize_annotate_layer; annotate "
                         "some, or use quantize_model to quantize every supported layer.")
    return _quantize(model, lambda layer: isinstance(layer, QuantizeAnnotate), preserve_sparsity,
                     ema_decay)


def quantize_model(model, preserve_sparsity=True, ema_decay=0.99):
    """Returns a quantization-aware copy of a Keras 3 model; the input model is not changed.

    Conv1D/2D, DepthwiseConv2D and Dense kernels get per-channel int8 fake quantization; with
    `preserve_sparsity=True` (the default) their zeros -- from pruning or `strip_pruning` -- stay
    zero. Fine-tune the copy for an epoch or two with a small learning rate, then convert it with
    `export_tflite(qat_model, path, quantize="int8", representative_data=xs)` or get a plain model
    back with `strip_quantization`.

    Pruning wrappers must be removed first (`strip_pruning`): the zeros are what QAT preserves.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> qat = quantize_model(model)
    >>> type(qat.layers[0]).__name__
    'QuantizeWrapper'
    """
    return _quantize(model, lambda layer: True, preserve_sparsity, ema_decay)


def _quantize(model, selected, preserve_sparsity, ema_decay):
    for layer in all_sublayers(model):
        if isinstance(layer, PruneLowMagnitude):
            raise ValueError(
                f"layer {layer.name!r} is still wrapped for pruning; quantize the stripped model: "
                "quantize_model(ep.strip_pruning(pruned)).")
        if isinstance(layer, QuantizeWrapper):
            raise ValueError(f"layer {layer.name!r} is already quantization-aware.")
    fused = _layers_fused_into_producer(model)

    def wrap(layer):
        inner = _unannotated(layer)
        copy = copy_layer(inner)
        quantize_output = layer.name not in fused
        if selected(layer) and (_has_quantizable_kernel(inner) or (
                quantize_output and isinstance(inner, _OUTPUT_QUANTIZED))):
            return QuantizeWrapper(copy, quantize_output=quantize_output,
                                   preserve_sparsity=preserve_sparsity, ema_decay=ema_decay,
                                   name=f"quant_{inner.name}")
        return copy

    return rebuild(model, wrap)


def _unannotated(layer):
    return layer.layer if isinstance(layer, QuantizeAnnotate) else layer


def strip_quantization(model):
    """Returns a plain Keras model from a `quantize_model` one, kernels snapped to the int8 grid.

    The kernels are the masked, fake-quantized values the QAT model computed with, so converting
    the result with full int8 quantization reproduces them exactly and keeps every zero.
    """

    def unwrap(layer):
        if not isinstance(layer, QuantizeWrapper):
            return copy_layer(layer)
        inner = layer.layer
        if not layer.quantizes_kernel:
            return copy_layer(inner)
        kernel = ops.convert_to_numpy(layer.quantized_kernel())
        return copy_layer(inner, [kernel if w is inner.kernel else ops.convert_to_numpy(w)
                                  for w in inner.weights])

    return rebuild(model, unwrap)


def is_quantize_aware(model):
    """Whether `model` contains `QuantizeWrapper` layers (made by `quantize_model`)."""
    return any(isinstance(layer, QuantizeWrapper)
               for layer in all_sublayers(model))


def _layers_fused_into_producer(model):
    """Names of layers whose only input comes from a layer TFLite fuses them with.

    A BatchNormalization or ReLU right after a Conv/Dense (or ReLU after BN) disappears into the
    producer's op in TFLite, so the producer's own output has no quantized tensor: such producers
    must not fake-quantize their outputs.
    """
    producers_of = {layer.name: _producer_names(layer) for layer in model.layers}
    consumers = {}
    for name, producers in producers_of.items():
        for producer in producers:
            consumers.setdefault(producer, []).append(name)
    by_name = {layer.name: _unannotated(layer) for layer in model.layers}
    fused_producers = set()
    for name, users in consumers.items():
        if len(users) == 1 and name in by_name and _fuses_into(by_name[users[0]], by_name[name]):
            fused_producers.add(name)
    return fused_producers


def _fuses_into(consumer, producer):
    linear_kernel_layer = _has_quantizable_kernel(producer) and producer.activation in (
        None, keras.activations.linear)
    if isinstance(consumer, keras.layers.BatchNormalization):
        return linear_kernel_layer
    is_relu = isinstance(consumer, keras.layers.ReLU) or (
        isinstance(consumer, keras.layers.Activation)
        and getattr(consumer.activation, "__name__", "") in ("relu", "relu6"))
    return is_relu and (linear_kernel_layer
                        or isinstance(producer, keras.layers.BatchNormalization))


def _producer_names(layer):
    names = []
    for node in inbound_nodes(layer):
        for tensor in node.input_tensors:
            operation = producer(tensor)
            if operation is not None:
                names.append(operation.name)
    return names
