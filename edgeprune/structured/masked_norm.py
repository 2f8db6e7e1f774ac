"""LayerNormalization over channels, made prunable: statistics over the live channels only.

A plain LayerNormalization over the channel axis cannot lose a channel exactly: a zeroed channel
still counts in the mean and variance of the others, so the zeroed model and the shrunk one would
differ. Channel pruning therefore works on a copy in which each such layer is a
`ChannelMaskedLayerNormalization`, whose `channel_mask` (1 live, 0 removed) is zeroed together
with the channel's other weights; `shrink` turns it back into a plain LayerNormalization over the
kept channels, which computes the same.
"""

import keras
from keras import ops

from edgeprune.model.rebuild import copy_layer, rebuild
from edgeprune.sparsity.wrapper import leaf_layers


@keras.saving.register_keras_serializable(package="edgeprune")
class ChannelMaskedLayerNormalization(keras.layers.LayerNormalization):
    """A LayerNormalization over the last axis that normalizes over the channels whose
    `channel_mask` is 1 and outputs 0 for the others.

    With an all-ones mask it computes what `keras.layers.LayerNormalization` computes.

    >>> import numpy as np
    >>> norm = ChannelMaskedLayerNormalization()
    >>> x = np.array([[1.0, 2.0, 3.0, 0.0]], "float32")
    >>> _ = norm(x)
    >>> _ = norm.channel_mask.assign([1.0, 1.0, 1.0, 0.0])
    >>> [round(float(v), 2) for v in norm(x)[0]]
    [-1.22, 0.0, 1.22, 0.0]
    """

    not_deployed_weights = ("channel_mask",)  # `shrink` drops it (see edgeprune.model.cost)

    def build(self, input_shape):
        super().build(input_shape)
        rank = len(input_shape)
        if [axis % rank for axis in self.axis] != [rank - 1] or self.rms_scaling:
            raise ValueError(f"{type(self).__name__} '{self.name}' normalizes the last axis "
                             f"only (without rms_scaling), got axis={self.axis}.")
        self.channel_mask = self.add_weight(name="channel_mask", shape=(input_shape[-1],),
                                            initializer="ones", trainable=False, autocast=False)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        mask = ops.cast(self.channel_mask, "float32")
        count = ops.maximum(ops.sum(mask), 1.0)
        mean = ops.sum(x * mask, axis=-1, keepdims=True) / count
        centered = (x - mean) * mask
        variance = ops.sum(ops.square(centered), axis=-1, keepdims=True) / count
        outputs = centered * ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            outputs = outputs * ops.cast(self.gamma, "float32")
        if self.beta is not None:
            outputs = outputs + ops.cast(self.beta, "float32") * mask
        return ops.cast(outputs, self.compute_dtype)


def prunable_copy(layer):
    """`copy_layer(layer)`, with a LayerNormalization over channels made channel-maskable."""
    if not _normalizes_channels(layer):
        return copy_layer(layer)
    masked = ChannelMaskedLayerNormalization.from_config(layer.get_config())
    masked.build_from_config(layer.get_build_config())
    masked.set_weights([*layer.get_weights(), ops.convert_to_numpy(masked.channel_mask)])
    return masked


def with_maskable_norms(model):
    """`model` itself, or a copy whose LayerNormalizations over channels are channel-maskable."""
    if not any(_normalizes_channels(layer) for layer in leaf_layers(model)):
        return model
    return rebuild(model, prunable_copy)


def _normalizes_channels(layer):
    if type(layer) is not keras.layers.LayerNormalization or not layer.built or layer.rms_scaling:
        return False
    rank = len(layer.get_build_config()["input_shape"])
    return [axis % rank for axis in layer.axis] == [rank - 1]
