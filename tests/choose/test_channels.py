"""Channel-group variants: scan over coupled groups, exact channel budgets, shrinkable result."""

import keras
import numpy as np
import pytest

import edgeprune as ep
from edgeprune.model.cost import model_macs
from edgeprune.sparsity.wrapper import leaf_layers
from tests.choose.conftest import accuracy_on


LEVELS = (0.25, 0.5, 0.75)


@pytest.fixture(scope="module")
def hand_built(trained_cnn):
    """`trained_cnn` made insensitive in conv1 and sensitive in a new 'logits' group.

    conv1 gets 24 extra all-zero filters (conv2 reads them with zero weights): removing them is
    free, and their L1 score of 0 puts them first in line. The head's computation moves into a
    layer 'logits' with one channel per class, followed by an identity 'head' (whose output is
    the model's, so never pruned): every removed 'logits' channel silences a class.
    """
    conv1, conv2, flatten, hidden, head = trained_cnn.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D.from_config({**conv1.get_config(), "filters": 32}),
        keras.layers.Conv2D.from_config(conv2.get_config()),
        keras.layers.Flatten.from_config(flatten.get_config()),
        keras.layers.Dense.from_config(hidden.get_config()),
        keras.layers.Dense(10, name="logits"),
        keras.layers.Dense(10, name="head")])
    pad = 32 - conv1.filters
    kernel, bias = conv1.get_weights()
    model.get_layer(conv1.name).set_weights([np.pad(kernel, ((0, 0),) * 3 + ((0, pad),)),
                                             np.pad(bias, (0, pad))])
    kernel, bias = conv2.get_weights()
    model.get_layer(conv2.name).set_weights([np.pad(kernel, ((0, 0), (0, 0), (0, pad), (0, 0))),
                                             bias])
    model.get_layer(hidden.name).set_weights(hidden.get_weights())
    model.get_layer("logits").set_weights(head.get_weights())
    model.get_layer("head").set_weights([np.eye(10, dtype="float32"), np.zeros(10, "float32")])
    return model


@pytest.fixture(scope="module")
def channel_table(hand_built, digits):
    return ep.sensitivity_scan(hand_built, accuracy_on(digits), sparsities=LEVELS,
                               structure="channels", progress=False)


def test_channel_scan_finds_the_sensitive_group(hand_built, trained_cnn, channel_table,
                                                digits):
    assert channel_table.baseline == pytest.approx(accuracy_on(digits)(trained_cnn), abs=0.005)
    assert channel_table.units == ["conv1", "conv2", "hidden", "logits"]  # head: model output
    assert channel_table.sizes == {"conv1": 32, "conv2": 16, "hidden": 64, "logits": 10}
    assert list(channel_table.drop("conv1")) == [0.0, 0.0, 0.0]  # only zero filters removed
    for level in LEVELS:
        assert channel_table.ranking(level)[0] == "logits"
    assert channel_table.drop("logits")[1] > 0.3  # half the classes silenced


@pytest.fixture(scope="module")
def trained_table(trained_cnn, digits):
    return ep.sensitivity_scan(trained_cnn, accuracy_on(digits), sparsities=LEVELS,
                               structure="channels", progress=False)


@pytest.mark.parametrize("budget", ["sparsity", "params", "macs"])
def test_channel_allocation_meets_its_budget_to_one_channel_per_group(
        trained_cnn, trained_table, budget):
    channel_table = trained_table
    dense = {"sparsity": 0, "params": trained_cnn.count_params(),
             "macs": channel_table.remaining({}, "macs")}[budget]
    assert dense == (0 if budget == "sparsity" else {
        "params": trained_cnn.count_params(),
        "macs": model_macs(leaf_layers(trained_cnn))}[budget])
    target = 0.5 if budget == "sparsity" else 0.4 * dense
    allocation = ep.allocate(channel_table, target, budget=budget)
    zeroed = ep.apply_channel_allocation(trained_cnn, allocation)
    small = ep.shrink(zeroed)
    ones = np.ones((2, 8, 8, 1), "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(small(ones)),
                               keras.ops.convert_to_numpy(zeroed(ones)), atol=1e-4)
    widths = {layer.name: (layer.filters if hasattr(layer, "filters") else layer.units)
              for layer in small.layers if layer.name in channel_table.sizes}
    assert widths == allocation.kept()
    one_channel = {"sparsity": {g: 1 for g in widths}, "params": channel_table.params,
                   "macs": channel_table.macs}[budget]
    tolerance = sum(one_channel[g] / channel_table.sizes[g] for g in widths)
    if budget == "sparsity":
        realized = sum(channel_table.sizes[g] - widths[g] for g in widths)
        target = target * sum(channel_table.sizes.values())
    elif budget == "params":
        realized = small.count_params()
    else:
        realized = model_macs(leaf_layers(small))
    assert abs(realized - target) <= tolerance


def test_channel_allocation_is_checked(hand_built, channel_table, trained_cnn):
    with pytest.raises(ValueError, match="apply_channel_allocation needs a channel"):
        ep.apply_channel_allocation(hand_built, ep.uniform_allocation(trained_cnn, 0.5))
    with pytest.raises(ValueError, match="schedules.*apply_channel_allocation"):
        ep.allocate(channel_table, 0.5).schedules(ep.ConstantSparsity(0.5, 0))
    with pytest.raises(ValueError, match="layers names channel groups.*conv9"):
        ep.sensitivity_scan(hand_built, lambda m: 0.0, structure="channels", layers=["conv9"])


@pytest.mark.every_backend
def test_channel_scan_and_allocation_cover_layer_norm_groups():
    x = keras.Input((8, 8, 1))
    y = keras.layers.Conv2D(16, 3, padding="same", name="conv")(x)
    y = keras.layers.ReLU()(keras.layers.LayerNormalization(name="ln")(y))
    y = keras.layers.Dense(12, activation="relu", name="hidden")(keras.layers.Flatten()(y))
    model = keras.Model(x, keras.layers.Dense(3, name="head")(y))
    inputs = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype("float32")
    reference = keras.ops.convert_to_numpy(model(inputs))

    def closeness(m):
        return -float(np.mean((keras.ops.convert_to_numpy(m(inputs)) - reference) ** 2))

    table = ep.sensitivity_scan(model, closeness, sparsities=LEVELS, structure="channels",
                                progress=False)
    assert table.units == ["conv", "hidden"]
    assert table.remaining({}, "params") == model.count_params()  # no mask in the cost model
    allocation = ep.allocate(table, 0.5 * model.count_params(), budget="params")
    zeroed = ep.apply_channel_allocation(model, allocation)
    small = ep.shrink(zeroed)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(small(inputs)),
                               keras.ops.convert_to_numpy(zeroed(inputs)), atol=1e-4)
    assert small.get_layer("conv").filters == allocation.kept()["conv"]
    tolerance = sum(table.params[g] / table.sizes[g] for g in table.units)
    assert abs(small.count_params() - 0.5 * model.count_params()) <= tolerance
