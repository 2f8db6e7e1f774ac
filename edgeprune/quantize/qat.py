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

from edgeprune.model.keras_internals import all_sublayers
from edgeprune.model.rebuild import copy_layer, rebuild
from edgeprune.model.substitute import call_with_weights
from edgeprune.quantize.fake_quant import fake_quantize_activations, fake_quantize_weights
from edgeprune.quantize.fusion import (OUTPUT_QUANTIZED, has_quantizable_kernel,
                                       layers_fused_into_producer)
from edgeprune.sparsity.wrapper import PruneLowMagnitude


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
        self.quantizes_kernel = has_quantizable_kernel(layer)
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
        replacements = [(self.layer.kernel, self.quantized_kernel())] if self.quantizes_kernel \
            else []
        outputs = call_with_weights(self.layer, replacements, inputs, training=training, **kwargs)
        if not self.quantize_output:
            return outputs
        if training:
            self._update_range(outputs)
        # Before the first training step there is no range to quantize with. The range is read
        # as tensors first: JAX's cond takes no variables into its branches.
        range_min, range_max = self.output_min.value, self.output_max.value
        return ops.cond(self.range_updates > 0,
                        lambda: fake_quantize_activations(outputs, range_min, range_max),
                        lambda: outputs)

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
    fused = layers_fused_into_producer(model, _unannotated)

    def wrap(layer):
        inner = _unannotated(layer)
        copy = copy_layer(inner)
        quantize_output = layer.name not in fused
        if selected(layer) and (has_quantizable_kernel(inner) or (
                quantize_output and isinstance(inner, OUTPUT_QUANTIZED))):
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
