"""Model and data factories the recipes in `recipes/` name (`../examples/models.py:digits_cnn`).

A recipe's `factory: path/to/file.py:function` is imported only when a recipe names it; the
function returns a Keras 3 model (model factories) or `(train, test)` tf.data Datasets (data
factories).

>>> model = digits_cnn()
>>> model.output.shape
(None, 10)
"""

import argparse
import time

import edgeprune as ep
import keras
import numpy as np


def digits_cnn(filters=16, dense_units=64):
    """The quickstart CNN on 8x8x1 digits: two convolutions and a dense head, logits out."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(filters * 2, 3, activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(10, name="classifier")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def tiny_mcu_cnn(filters=8):
    """A microcontroller-sized digits model (a few kB int8): conv, depthwise, pointwise, pool, dense."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="depthwise")(x)
    x = keras.layers.Conv2D(filters * 2, 1, activation="relu", name="pointwise")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(10, name="classifier")(x)
    return keras.Model(inputs, outputs, name="tiny_mcu_cnn")


def xnnpack_cnn(size=32, widths=(32, 64, 128), classes=10):
    """A MobileNet-style CNN laid out for XNNPACK's sparse inference, as in tfmot's "pruning for
    on-device inference" guide: ZeroPadding2D(1) and a 3x3, stride 2, 'valid' convolution over
    RGB, then depthwise + 1x1 blocks (a stride-2 depthwise after ZeroPadding2D(1)), a
    GlobalAveragePooling2D and a dense head; BatchNormalization momentum 0.9 for a small set.
    `PruneForLatencyOnXNNPack` accepts it (keras.applications models start with 'same' padding,
    which XNNPACK's sparse path cannot take)."""
    L = keras.layers

    def conv_bn_relu(x, layer):
        return L.ReLU()(L.BatchNormalization(momentum=0.9)(layer(x)))

    inputs = keras.Input((size, size, 3))
    x = L.ZeroPadding2D(1)(inputs)
    x = conv_bn_relu(x, L.Conv2D(widths[0], 3, strides=2, padding="valid", use_bias=False))
    for index, width in enumerate(widths[1:]):
        if index:
            x = conv_bn_relu(L.ZeroPadding2D(1)(x), L.DepthwiseConv2D(3, strides=2,
                                                                      use_bias=False))
        else:
            x = conv_bn_relu(x, L.DepthwiseConv2D(3, padding="same", use_bias=False))
        x = conv_bn_relu(x, L.Conv2D(width, 1, use_bias=False))
    x = L.GlobalAveragePooling2D(keepdims=True)(x)
    outputs = L.Dense(classes, name="classifier")(L.Flatten()(x))
    return keras.Model(inputs, outputs, name="xnnpack_cnn")


def digits_rgb(size=32, batch_size=32, seed=0):
    """Digits upscaled to `size` x `size` x 3 as `(train, test)` tf.data Datasets of batches.

    A stand-in image task for keras.applications models, which need at least 32x32 RGB input.
    """
    import tensorflow as tf

    from edgeprune.data import load_digits

    (x, y), (test_x, test_y) = load_digits(seed=seed)

    def to_rgb(images):
        resized = tf.image.resize(images, (size, size), method="nearest")
        return np.repeat(resized.numpy(), 3, axis=-1)

    train = tf.data.Dataset.from_tensor_slices((to_rgb(x), y)).shuffle(len(x), seed=seed)
    test = tf.data.Dataset.from_tensor_slices((to_rgb(test_x), test_y))
    return train.batch(batch_size), test.batch(batch_size)


def compiled(model, learning_rate=1e-3):
    """`model` compiled for integer labels and logits outputs, as every example trains it."""
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


class progress(keras.callbacks.Callback):  # noqa: N801  (used like a function)
    """Prints one line per epoch, so a script that trains for minutes shows it is working."""

    def __init__(self, label):
        super().__init__()
        self.label, self.started = label, None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        print(f"{self.label} epoch {epoch + 1}/{self.params['epochs']}: loss "
              f"{logs.get('loss', float('nan')):.4f}, accuracy {logs.get('accuracy', 0):.2%} "
              f"({time.perf_counter() - self.started:.1f} s)", flush=True)


def accuracy(model, x, y):
    """Top-1 accuracy of a Keras model on arrays."""
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def custom_loop_start(backend, description):
    """What the custom-loop examples start from: Keras on `backend` (checked), `--steps` parsed,
    the digits split, and a small CNN wrapped to reach 80% sparsity over the first two thirds of
    the steps, masks recomputed every 10. Returns `(steps, (x, y), (test_x, test_y), pruned)`."""
    if keras.backend.backend() != backend:
        raise SystemExit(f"This example needs KERAS_BACKEND={backend}, not "
                         f"{keras.backend.backend()!r}.")
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=300, help="training steps (batches of 32)")
    steps = parser.parse_args().steps
    train, test = ep.load_digits()
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Conv2D(16, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    pruned = ep.prune_low_magnitude(model, pruning_schedule=ep.PolynomialDecay(
        0.0, 0.8, begin_step=0, end_step=steps * 2 // 3, frequency=10))
    return steps, train, test, pruned


def custom_loop_report(pruned, test):
    """Strips `pruned` and prints its test accuracy and the sparsity of each pruned weight."""
    final = ep.strip_pruning(pruned)
    print(f"accuracy {accuracy(final, *test):.4f}")
    for row in ep.sparsity_report(final):
        print(f"{row['layer']} {row['weight']} sparsity {row['sparsity']:.1%}")


def trained_mobilenet_v2(alpha, epochs=8, size=32):
    """MobileNetV2 (random init, logits out) trained on `digits_rgb`; returns (model, train, test).

    BatchNormalization momentum 0.9: MobileNetV2's 0.999 is for ImageNet-sized data; on a
    small set its moving statistics (used at test time) lag far behind.
    """
    train, test = digits_rgb(size=size, batch_size=16)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3), classes=10,
                                           alpha=alpha, classifier_activation=None)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model = compiled(model, 2e-3)
    model.fit(train, epochs=epochs, verbose=0, callbacks=[progress(f"MobileNetV2 {alpha}")])
    return model, train, test
