"""Session fixtures for the quantization tests: a trained digits CNN and an 80% sparse copy."""

import keras
import pytest

from tests.quantize.models import compile_for_digits, digits_cnn, zero_smallest


@pytest.fixture(scope="session")
def trained_cnn(digits):
    """A digits CNN trained for a few epochs (the `digits` fixture comes from tests/conftest.py)."""
    (x, y), _ = digits
    keras.utils.set_random_seed(1)
    model = compile_for_digits(digits_cnn())
    model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def sparse_cnn(trained_cnn):
    """A copy of `trained_cnn` with 80% of each kernel set to zero (a stripped pruned model)."""
    model = keras.models.clone_model(trained_cnn)
    model.set_weights(trained_cnn.get_weights())
    return zero_smallest(model)
