"""On PyTorch a pruning wrapper masks its variable in place before the forward pass instead of
computing `weight * mask` (`edgeprune.autodiff.masked_weight`). What that must keep: outputs
always computed with the masked kernel, even after a plain `torch.optim` step wrote into pruned
weights; autograd valid when the model runs twice before one backward pass; and a value handed to
`stateless_call` never written. The TensorFlow and JAX runs skip those: they take the product.
There the wrapper also calls its layer's `call` directly (`keras_internals.call_nested`), so the
layers inside must still see the training flag, and update their state, as in a plain call."""

import keras
import numpy as np
import pytest

import edgeprune as ep

pytestmark = pytest.mark.every_backend
torch_only = pytest.mark.skipif(keras.backend.backend() != "torch",
                                reason="the in-place masking is PyTorch's")


@pytest.fixture
def pruned():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    pruned = ep.prune_low_magnitude(model, pruning_schedule=ep.ConstantSparsity(0.5, 0, frequency=1))
    controller = ep.PruningController(pruned)
    controller.begin()
    controller.step()  # masks at step 1
    yield pruned  # the wrappers hold their controller weakly: it lives as long as the test


def expected(pruned, x):
    wrapper = pruned.layers[0]
    kernel = wrapper.masked_weight_values()[0]
    return x @ kernel + keras.ops.convert_to_numpy(wrapper.layer.bias)


@torch_only
def test_outputs_use_the_masked_kernel_after_an_optimizer_writes_pruned_weights(pruned):
    import torch

    x = np.random.default_rng(1).normal(size=(8, 6)).astype("float32")
    optimizer = torch.optim.SGD(pruned.parameters(), lr=0.5)
    loss = pruned(torch.from_numpy(x), training=True).square().sum()
    loss.backward()
    optimizer.step()
    wrapper = pruned.layers[0]
    kernel, mask = (keras.ops.convert_to_numpy(v) for v in (wrapper.layer.kernel, wrapper.masks[0]))
    assert np.abs(kernel[mask == 0]).max() > 0  # the gradient reached pruned weights
    for training in (True, False):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(pruned(x, training=training)),
                                   expected(pruned, x), rtol=1e-5, atol=1e-6)


@torch_only
def test_two_forward_passes_before_one_backward_pass(pruned):
    import torch

    x = torch.ones((2, 6))
    wrapper = pruned.layers[0]
    wrapper.layer.kernel.assign(keras.ops.ones((6, 4)))  # unmasked: the next forward masks it
    loss = pruned(x, training=True).sum() + pruned(2 * x, training=True).sum()
    loss.backward()  # the second call left the kernel the first one saved for backward alone
    mask = keras.ops.convert_to_numpy(wrapper.masks[0])
    gradient = wrapper.layer.kernel.value.grad.numpy()
    np.testing.assert_allclose(gradient, np.full((6, 4), 6.0))  # d/dW of sum(xW) + sum(2xW)
    assert (keras.ops.convert_to_numpy(wrapper.layer.kernel)[mask == 0] == 0).all()


@torch_only
def test_stateless_call_never_writes_the_values_it_is_given(pruned):
    wrapper = pruned.layers[0]
    values = [keras.ops.ones(v.shape) for v in pruned.trainable_variables]
    before = [keras.ops.convert_to_numpy(v).copy() for v in values]
    x = np.ones((3, 6), "float32")
    outputs, _ = pruned.stateless_call(values, [v.value for v in pruned.non_trainable_variables],
                                       x, training=True)
    for value, copy in zip(values, before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(value), copy)
    mask = keras.ops.convert_to_numpy(wrapper.masks[0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs), x @ mask + 1, rtol=1e-6)


def test_wrapped_layers_see_the_training_flag_and_update_their_state():
    keras.utils.set_random_seed(0)
    schedule = ep.ConstantSparsity(0.5, 0)
    dropout = ep.PruneLowMagnitude(keras.layers.Dropout(0.5), pruning_schedule=schedule)
    norm = ep.PruneLowMagnitude(keras.layers.BatchNormalization(), pruning_schedule=schedule,
                                weight_names=["gamma"])
    model = keras.Sequential([keras.Input((32,)), dropout, norm])
    controller = ep.PruningController(model)
    controller.begin()
    x = np.random.default_rng(0).normal(size=(64, 32)).astype("float32")
    dropped = keras.ops.convert_to_numpy(dropout(x, training=True))
    assert 0.3 < np.mean(dropped == 0) < 0.7
    assert np.array_equal(keras.ops.convert_to_numpy(dropout(x, training=False)), x)
    before = keras.ops.convert_to_numpy(norm.layer.moving_mean).copy()
    norm(x, training=True)
    assert not np.allclose(keras.ops.convert_to_numpy(norm.layer.moving_mean), before)
