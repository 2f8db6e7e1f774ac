"""Tiny models for the quantization and export tests: a digits CNN, and helpers to sparsify it."""

import keras
import numpy as np

SPARSITY = 0.8


def digits_cnn():
    """Conv -> BN -> ReLU -> DepthwiseConv -> ReLU -> Flatten -> Dense: every fusion TFLite does."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10)(x)
    return keras.Model(inputs, outputs)


def zero_smallest(model, fraction=SPARSITY):
    """Zeroes the smallest-magnitude `fraction` of every kernel, like a stripped pruned model."""
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            kernel = layer.kernel.numpy()
            threshold = np.quantile(np.abs(kernel), fraction)
            layer.kernel.assign(np.where(np.abs(kernel) <= threshold, 0.0, kernel))
    return model


def kernel_sparsities(model):
    """Fraction of zeros in each kernel of a Keras model, by layer name."""
    return {layer.name: float(np.mean(layer.kernel.numpy() == 0))
            for layer in model.layers if hasattr(layer, "kernel")}


def compile_for_digits(model, learning_rate=1e-3):
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model
