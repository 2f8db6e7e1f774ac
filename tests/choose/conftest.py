"""Shared fixtures for the choosing-sparsity tests: a briefly trained digits CNN and its metric."""

import keras
import numpy as np
import pytest
from scipy.linalg import hadamard



def named_cnn(filters=8, seed=0):
    """The shared digits CNN's shape with fixed layer names: tests read layers by name, and
    auto-generated names depend on how many models the worker built before."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.Conv2D(filters * 2, 3, activation="relu", name="conv2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(64, activation="relu", name="hidden"),
        keras.layers.Dense(10, name="head")], name="named_cnn")


def compile_and_fit(model, data, epochs, callbacks=(), batch_size=64):
    (x, y), _ = data
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False,
              callbacks=list(callbacks))
    return model


def accuracy_on(data):
    (_, _), (x_test, y_test) = data

    def accuracy(model):
        # A direct call: predict() builds a dataset pipeline per call, slower on 450 images.
        logits = keras.ops.convert_to_numpy(model(x_test, training=False))
        return float(np.mean(np.argmax(logits, -1) == y_test))
    return accuracy


@pytest.fixture(scope="session")
def trained_cnn(digits):
    return compile_and_fit(named_cnn(), digits, epochs=6)


@pytest.fixture(scope="session")
def fragile_cnn(trained_cnn):
    """The trained CNN with a dense layer 'fragile' inserted before the head whose kernel is a
    Hadamard matrix (every weight the same magnitude, every one carrying signal); the head is
    rotated back, so the model computes what `trained_cnn` computes. Magnitude pruning of
    'fragile' scrambles the features, while the trained layers hold many small weights."""
    hidden = trained_cnn.get_layer("hidden")
    head = trained_cnn.get_layer("head")
    units = hidden.units
    rotation = hadamard(units).astype("float32") / np.sqrt(units)
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for layer in trained_cnn.layers[:-1]:
        x = layer.__class__.from_config(layer.get_config())(x)
    x = keras.layers.Dense(units, use_bias=False, name="fragile")(x)
    outputs = keras.layers.Dense(10, name="head")(x)
    model = keras.Model(inputs, outputs)
    for layer in trained_cnn.layers[:-1]:
        model.get_layer(layer.name).set_weights(layer.get_weights())
    model.get_layer("fragile").set_weights([rotation])
    kernel, bias = head.get_weights()
    model.get_layer("head").set_weights([rotation.T @ kernel, bias])
    return model
