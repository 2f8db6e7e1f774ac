"""`PruneForLatencyOnXNNPack` checks what tfmot's policy checks, on Keras 3 graphs."""

import keras
import pytest

import edgeprune as ep

L = keras.layers


def xnnpack_model(start=("pad", "valid"), middle=(), keepdims=False):
    """tfmot's on-device guide model: ZeroPadding2D(1) + 3x3/2 'valid' conv, depthwise and 1x1
    blocks, GlobalAveragePooling2D, dense head; `middle` layers go after the first block."""
    pad, padding = start
    layers = [L.Input((32, 32, 3)), *([L.ZeroPadding2D(1)] if pad else []),
              L.Conv2D(8, 3, strides=2, padding=padding), L.BatchNormalization(), L.ReLU(),
              L.DepthwiseConv2D(3, padding="same"), L.BatchNormalization(), L.ReLU(),
              L.Conv2D(16, 1), L.BatchNormalization(), L.ReLU(), *middle,
              L.ZeroPadding2D(1), L.DepthwiseConv2D(3, strides=2, padding="valid"),
              L.BatchNormalization(), L.ReLU(), L.Conv2D(32, 1), L.BatchNormalization(),
              L.ReLU(), L.GlobalAveragePooling2D(keepdims=keepdims), L.Flatten(), L.Dense(10)]
    return keras.Sequential(layers)


def prune(model):
    return ep.prune_low_magnitude(model, pruning_policy=ep.PruneForLatencyOnXNNPack())


def test_the_on_device_guide_model_is_accepted_and_only_its_1x1_convs_are_wrapped():
    for keepdims in (False, True):  # tfmot accepts both (the guide's text predates that)
        wrappers = ep.PruningController(prune(xnnpack_model(keepdims=keepdims))).wrappers
        assert [w.layer.kernel_size for w in wrappers] == [(1, 1), (1, 1)]


def test_a_same_padded_start_convolution_without_zero_padding_is_refused():
    with pytest.raises(ValueError, match="ZeroPadding2D\\(1\\).*'same' padding does not"):
        prune(xnnpack_model(start=(False, "same")))
    with pytest.raises(ValueError, match="3x3, stride 2"):
        prune(keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                             weights=None, classes=10))


def test_a_layer_without_a_sparse_kernel_between_start_and_pooling_is_refused():
    with pytest.raises(ValueError, match="'max_pool'.*MaxPooling2D.*XNNPACK's sparse path"):
        prune(xnnpack_model(middle=[L.MaxPooling2D(name="max_pool")]))
    # What XNNPACK runs sparse passes: these activations and dropout.
    accepted = xnnpack_model(middle=[L.Activation("relu6"), L.Dropout(0.1)])
    assert len(ep.PruningController(prune(accepted)).wrappers) == 2


def test_every_output_branch_needs_the_global_pooling():
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, strides=2)(L.ZeroPadding2D(1)(inputs))
    pooled = L.GlobalAveragePooling2D()(L.Conv2D(16, 1)(x))
    model = keras.Model(inputs, [pooled, L.Flatten()(x)])  # the second branch skips the pooling
    with pytest.raises(ValueError, match="GlobalAveragePooling2D on every output branch"):
        prune(model)


def test_residual_adds_and_a_nested_model_are_walked():
    block_in = keras.Input((16, 16, 8))
    block = keras.Model(block_in, L.Add()([block_in, L.Conv2D(8, 1)(block_in)]), name="block")
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, strides=2)(L.ZeroPadding2D(1)(inputs))
    x = block(x) + x  # a keras.ops add between Keras tensors
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
    assert [w.layer.name for w in ep.PruningController(prune(model)).wrappers] == [
        block.layers[1].name]


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = L.Conv2D(8, 1)

    def call(self, x):
        return self.conv(x)


def test_an_unbuilt_or_subclassed_model_gets_a_value_error():
    with pytest.raises(ValueError, match="not built"):
        prune(keras.Sequential([L.Conv2D(8, 1)]))
    subclassed = Subclassed()
    subclassed(keras.ops.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="Sequential or functional model, not a subclassed"):
        prune(subclassed)
