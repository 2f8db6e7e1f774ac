import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from edgeprune.data import load_digits  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    return load_digits()


def make_digits_cnn(filters=16, seed=0):
    """The small CNN used across tests: two convs, a dense head, digits input (8, 8, 1)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(filters * 2, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10)(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


@pytest.fixture
def digits_cnn():
    return make_digits_cnn()


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]
