"""Pruning policies: which layers of a model to prune, for a given runtime."""

import keras

from edgeprune.model.keras_internals import all_sublayers


class PruneForLatencyOnXNNPack:
    """Prunes only what XNNPACK's sparse inference can use (tfmot's policy of the same name).

    XNNPACK runs a float model sparse when its 1x1 convolutions store weights sparse, the graph
    starts with a 3x3 stride-2 convolution over 3 channels and ends with a spatial mean; it then
    needs >= 2/3 of the 1x1 weights zero, and it runs on ARM only. This policy wraps only those
    1x1 convolutions and checks the model's first and last operations.

    >>> pruned = ep.prune_low_magnitude(model, pruning_policy=ep.PruneForLatencyOnXNNPack())  # doctest: +SKIP
    """

    def allow_pruning(self, layer):
        return (isinstance(layer, keras.layers.Conv2D)
                and not isinstance(layer, keras.layers.Conv2DTranspose)
                and tuple(layer.kernel_size) == (1, 1) and tuple(layer.strides) == (1, 1)
                and layer.groups == 1)

    def ensure_model_supports_pruning(self, model):
        convs = [l for l in all_sublayers(model)
                 if isinstance(l, keras.layers.Conv2D)]
        first = convs[0] if convs else None
        if (first is None or tuple(first.kernel_size) != (3, 3) or tuple(first.strides) != (2, 2)
                or first.input.shape[-1] != 3):
            raise ValueError("PruneForLatencyOnXNNPack needs a model whose first convolution is "
                             "3x3, stride 2, over 3 input channels (XNNPACK's sparse-inference "
                             "pattern); this model does not start that way.")
        last_pool = [l for l in all_sublayers(model)
                     if isinstance(l, keras.layers.GlobalAveragePooling2D)]
        if not last_pool:
            raise ValueError("PruneForLatencyOnXNNPack needs the model to end its convolutions "
                             "with a spatial mean (GlobalAveragePooling2D).")
