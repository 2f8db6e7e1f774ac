import keras
import numpy as np
import pytest

from edgeprune.structured import prune_channels, shrink


def randomize_per_channel_weights(model, seed=0):
    """Gives biases, BN parameters and statistics random values, so that a channel whose producer
    alone were zeroed would still carry a nonzero value downstream."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        for weight in layer.weights:
            if weight.name in ("gamma", "moving_variance"):
                weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
            elif weight.name in ("beta", "moving_mean", "bias"):
                weight.assign(rng.uniform(-0.5, 0.5, weight.shape).astype("float32"))


def max_relative_difference(a, b):
    return float(np.abs(a - b).max() / (np.abs(a).max() + 1e-12))


@pytest.fixture
def check_shrink():
    """Prunes `model` one-shot, shrinks it, and checks the shrunk model matches the zeroed one."""

    def check(model, sparsity=0.5, inputs=None, **options):
        randomize_per_channel_weights(model)
        if inputs is None:
            shape = (3, *model.input_shape[1:])
            inputs = np.random.default_rng(1).normal(size=shape).astype("float32")
        zeroed = prune_channels(model, sparsity, **options)
        small = shrink(zeroed)
        assert small.count_params() < model.count_params()
        difference = max_relative_difference(zeroed.predict(inputs, verbose=0),
                                             small.predict(inputs, verbose=0))
        assert difference <= 1e-4
        return zeroed, small

    return check
