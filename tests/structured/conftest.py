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


def outputs(model, inputs):
    return keras.ops.convert_to_numpy(model(inputs, training=False))  # eager: no tracing cost


@pytest.fixture
def check_shrink():
    """Prunes `model` one-shot and shrinks it; checks the shrunk model computes what the zeroed one
    does (max difference ≤ 1e-4 of the output scale) and that `model` itself is unchanged."""

    def check(model, sparsity=0.5, inputs=None, **options):
        randomize_per_channel_weights(model)
        if inputs is None:
            shape = (3, *model.input_shape[1:])
            inputs = np.random.default_rng(1).normal(size=shape).astype("float32")
        before = model.get_weights()
        zeroed = prune_channels(model, sparsity, **options)
        small = shrink(zeroed)
        for old, new in zip(before, model.get_weights()):
            np.testing.assert_array_equal(old, new)
        assert small.count_params() < model.count_params()
        expected = outputs(zeroed, inputs)
        difference = np.abs(outputs(small, inputs) - expected).max() / np.abs(expected).max()
        assert difference <= 1e-4
        return zeroed, small

    return check
