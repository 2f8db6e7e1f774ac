"""Coupled channel groups on hand-built graphs, one per coupling kind, each checked end to end:
the groups the graph finds, and shrink(prune_channels(model)) computing what the zeroed model does."""

import keras
import numpy as np
import pytest
from keras import layers

from edgeprune.structured import (ChannelGraph, channel_masks, prune_channels, shrink,
                                  shrink_report)
from edgeprune.structured.masked_norm import ChannelMaskedLayerNormalization, prunable_copy


def group_layers(graph):
    return sorted(tuple(sorted(layer.name for layer in g.layers)) for g in graph.groups)


def zero_filters(model, name):
    kernel = model.get_layer(name).get_weights()[0]
    return np.flatnonzero(np.abs(kernel.reshape(-1, kernel.shape[-1])).sum(axis=0) == 0)


@pytest.mark.parametrize("merge", [layers.Add, layers.Subtract, layers.Multiply, layers.Average,
                                   layers.Maximum])
def test_elementwise_merge_couples_both_branches(merge, check_shrink):
    x = keras.Input((8, 8, 3))
    a = layers.Conv2D(8, 3, padding="same", name="a")(x)
    b = layers.Conv2D(8, 1, name="b")(x)
    y = merge()([a, b])
    y = layers.Conv2D(4, 1, name="head")(y)
    model = keras.Model(x, y)
    assert group_layers(ChannelGraph(model)) == [("a", "b")]
    zeroed, small = check_shrink(model)
    np.testing.assert_array_equal(zero_filters(zeroed, "a"), zero_filters(zeroed, "b"))
    assert small.get_layer("a").filters == small.get_layer("b").filters == 4


def test_keras_ops_with_scalars_pass_channels_through(check_shrink):
    x = keras.Input((8, 8, 3))
    a = layers.Conv2D(8, 3, name="a")(x)
    y = layers.Multiply()([a, layers.ReLU(6.0)(a + 3.0) * (1.0 / 6.0)])  # MobileNetV3's hard-swish
    model = keras.Model(x, layers.Conv2D(2, 1)(y))
    assert group_layers(ChannelGraph(model)) == [("a",)]
    check_shrink(model)


def test_broadcast_merge_keeps_the_single_channel(check_shrink):
    x = keras.Input((8, 8, 3))
    a = layers.Conv2D(8, 3, name="a")(x)
    gate = layers.Conv2D(1, 1, activation="sigmoid", name="gate")(a)
    model = keras.Model(x, layers.Conv2D(2, 1)(layers.Multiply()([a, gate])))
    assert group_layers(ChannelGraph(model)) == [("a",)]
    check_shrink(model)


def test_concatenate_offsets_reach_the_consumer_input_slices(check_shrink):
    x = keras.Input((8, 8, 3))
    a = layers.Conv2D(4, 3, padding="same", name="a")(x)
    b = layers.Conv2D(6, 3, padding="same", name="b")(x)
    y = layers.Conv2D(5, 1, name="head")(layers.Concatenate()([a, b]))
    model = keras.Model(x, y)
    assert group_layers(ChannelGraph(model)) == [("a",), ("b",)]
    zeroed, small = check_shrink(model)
    head = zeroed.get_layer("head").get_weights()[0][0, 0]  # (in = 4 + 6, out)
    removed = np.concatenate([zero_filters(zeroed, "a"), 4 + zero_filters(zeroed, "b")])
    assert len(removed) == 5
    np.testing.assert_array_equal(np.flatnonzero(np.abs(head).sum(axis=1) == 0), np.sort(removed))
    assert small.get_layer("head").get_weights()[0].shape[2] == 5


@pytest.mark.every_backend
def test_batch_norm_parameters_and_statistics_follow_the_channel(check_shrink):
    x = keras.Input((8, 8, 3))
    y = layers.BatchNormalization(name="bn")(layers.Conv2D(8, 3, name="a")(x))
    model = keras.Model(x, layers.Conv2D(2, 1)(layers.ReLU()(y)))
    zeroed, small = check_shrink(model)
    gamma, beta, *_ = zeroed.get_layer("bn").get_weights()
    removed = zero_filters(zeroed, "a")
    assert not gamma[removed].any() and not beta[removed].any()
    assert all(w.shape == (4,) for w in small.get_layer("bn").get_weights())


@pytest.mark.every_backend
def test_layer_norm_across_channels_is_pruned_with_statistics_over_live_channels(check_shrink):
    x = keras.Input((8, 8, 3))
    y = layers.LayerNormalization(name="ln")(layers.Conv2D(8, 3, name="a")(x))
    model = keras.Model(x, layers.Conv2D(2, 1)(layers.ReLU()(y)))
    # A plain LayerNormalization cannot lose a channel exactly: the zeroed one would still count
    # in the others' mean and variance.
    graph = ChannelGraph(model)
    assert graph.groups == [] and [u.layer for u in graph.unprunable] == ["ln"]
    assert "statistics" in graph.unprunable[0].reason

    zeroed, small = check_shrink(model)  # pruning masks the statistics instead
    norm = zeroed.get_layer("ln")
    assert isinstance(norm, ChannelMaskedLayerNormalization)
    np.testing.assert_array_equal(np.flatnonzero(keras.ops.convert_to_numpy(norm.channel_mask) == 0),
                                  zero_filters(zeroed, "a"))
    assert type(small.get_layer("ln")) is layers.LayerNormalization
    assert [w.shape for w in small.get_layer("ln").weights] == [(4,), (4,)]
    assert type(model.get_layer("ln")) is layers.LayerNormalization  # the input is untouched
    row = next(r for r in shrink_report(zeroed, small).layers if r.name == "ln")
    assert row.params == (16, 8)  # gamma and beta; the mask exists only while pruning


def test_layer_norm_on_a_residual_stream_couples_like_a_transformer_block(check_shrink):
    x = keras.Input((6, 4))
    stream = layers.Dense(16, name="embed")(x)
    hidden = layers.Dense(32, activation="gelu", name="mlp_in")(
        layers.LayerNormalization(name="ln1")(stream))
    stream = layers.Add()([stream, layers.Dense(16, name="mlp_out")(hidden)])
    y = layers.Dense(3, name="head")(layers.LayerNormalization(name="ln2")(stream))
    model = keras.Model(x, y)
    zeroed, small = check_shrink(model)
    assert small.get_layer("embed").units == small.get_layer("mlp_out").units == 8
    assert small.get_layer("mlp_in").units == 16
    assert [w.shape for w in small.get_layer("ln2").weights] == [(8,), (8,)]


def test_masked_layer_norm_with_every_channel_live_is_a_layer_norm(tmp_path):
    x = np.random.default_rng(0).normal(size=(4, 5, 6)).astype("float32")
    plain = layers.LayerNormalization(epsilon=1e-5, center=False)
    plain(x)
    plain.gamma.assign(np.linspace(0.5, 2.0, 6).astype("float32"))
    masked = prunable_copy(plain)
    expected = keras.ops.convert_to_numpy(plain(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(masked(x)), expected, atol=1e-5)
    model = keras.Sequential([keras.Input((5, 6)), masked])
    path = tmp_path / "masked.keras"
    model.save(path)
    restored = keras.models.load_model(path)  # safe_mode: the class is registered
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(x)), expected, atol=1e-5)


def test_layer_norm_over_spatial_axes_passes_channels_through(check_shrink):
    x = keras.Input((8, 8, 3))
    y = layers.LayerNormalization(axis=(1, 2))(layers.Conv2D(8, 3, name="a")(x))
    model = keras.Model(x, layers.Conv2D(2, 1)(y))
    assert group_layers(ChannelGraph(model)) == [("a",)]
    check_shrink(model)


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_couples_input_and_output_channels(multiplier, check_shrink):
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(8, 1, name="expand")(x)
    y = layers.DepthwiseConv2D(3, depth_multiplier=multiplier, name="dw")(y)
    y = layers.BatchNormalization()(y)
    model = keras.Model(x, layers.Conv2D(2, 1, name="project")(y))
    assert group_layers(ChannelGraph(model)) == [("expand",)]
    zeroed, small = check_shrink(model)
    assert small.get_layer("dw").get_weights()[0].shape == (3, 3, 4, multiplier)
    assert small.get_layer("project").get_weights()[0].shape[2] == 4 * multiplier


def test_depthwise_grouped_convolution_follows_its_input(check_shrink):
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(8, 1, name="expand")(x)
    y = layers.Conv2D(8, 3, groups=8, name="dw")(y)
    model = keras.Model(x, layers.Conv2D(2, 1)(y))
    assert group_layers(ChannelGraph(model)) == [("expand",)]
    zeroed, small = check_shrink(model)
    assert small.get_layer("dw").groups == small.get_layer("dw").filters == 4


def test_grouped_convolution_is_unprunable():
    x = keras.Input((8, 8, 4))
    y = layers.Conv2D(8, 1, name="a")(x)
    y = layers.Conv2D(8, 3, groups=2, name="grouped")(y)
    graph = ChannelGraph(keras.Model(x, layers.Conv2D(2, 1, name="b")(y)))
    assert group_layers(graph) == []
    assert [u.layer for u in graph.unprunable] == ["grouped"]


def test_separable_convolution(check_shrink):
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(8, 1, name="a")(x)
    y = layers.SeparableConv2D(6, 3, depth_multiplier=2, name="sep")(y)
    model = keras.Model(x, layers.Conv2D(2, 1)(y))
    assert group_layers(ChannelGraph(model)) == [("a",), ("sep",)]
    zeroed, small = check_shrink(model)
    depthwise, pointwise, bias = small.get_layer("sep").get_weights()
    assert depthwise.shape == (3, 3, 4, 2) and pointwise.shape == (1, 1, 8, 3) and bias.shape == (3,)


def test_squeeze_and_excitation_couples_the_gate_with_the_trunk(check_shrink):
    x = keras.Input((8, 8, 3))
    trunk = layers.Conv2D(16, 3, padding="same", activation="relu", name="trunk")(x)
    s = layers.GlobalAveragePooling2D()(trunk)
    s = layers.Dense(4, activation="relu", name="squeeze")(s)
    s = layers.Dense(16, activation="sigmoid", name="excite")(s)
    s = layers.Reshape((1, 1, 16))(s)
    y = layers.Multiply()([trunk, s])
    model = keras.Model(x, layers.Conv2D(2, 1)(y))
    assert group_layers(ChannelGraph(model)) == [("excite", "trunk"), ("squeeze",)]
    zeroed, small = check_shrink(model)
    assert small.get_layer("excite").units == small.get_layer("trunk").filters == 8


@pytest.mark.parametrize("flatten", [layers.Flatten, lambda: layers.Reshape((-1,)),
                                     lambda: layers.Reshape((3, 24))])
def test_flatten_or_reshape_into_dense_removes_every_position_of_a_channel(flatten, check_shrink):
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(4, 3, strides=2, name="a")(x)  # 3x3x4
    y = layers.Conv2D(8, 1, name="b")(y)  # 3x3x8 = 72 features
    model = keras.Model(x, layers.Dense(5, name="fc")(flatten()(y)))
    assert group_layers(ChannelGraph(model)) == [("a",), ("b",)]
    zeroed, small = check_shrink(model)
    rows = np.abs(zeroed.get_layer("fc").get_weights()[0]).sum(axis=1)
    removed = zero_filters(zeroed, "b")
    expected = np.flatnonzero(np.isin(np.arange(len(rows)) % 8, removed))
    np.testing.assert_array_equal(np.flatnonzero(rows == 0), expected)
    assert small.get_layer("fc").get_weights()[0].shape[0] == len(rows) // 2


def test_reshape_that_splits_channels_is_unprunable():
    x = keras.Input((4, 4, 3))
    y = layers.Conv2D(6, 1, name="a")(x)
    y = layers.Reshape((4, 4, 2, 3), name="split")(y)
    graph = ChannelGraph(keras.Model(x, layers.Dense(2)(y)))
    assert [u.layer for u in graph.unprunable] == ["split"]
    assert ("a",) not in group_layers(graph)


def test_pooling_padding_activations_and_dropout_pass_channels_through(check_shrink):
    x = keras.Input((16, 16, 3))
    y = layers.Conv2D(8, 3, name="a")(x)
    for layer in [layers.ZeroPadding2D(1), layers.MaxPooling2D(), layers.Activation("swish"),
                  layers.LeakyReLU(), layers.PReLU(), layers.Dropout(0.5), layers.Cropping2D(1),
                  layers.AveragePooling2D(2), layers.UpSampling2D(), layers.SpatialDropout2D(0.2),
                  layers.ELU(), layers.Activation("sigmoid")]:
        y = layer(y)
    y = layers.Conv2D(6, 3, name="b")(y)
    model = keras.Model(x, layers.Dense(2)(layers.GlobalMaxPooling2D()(y)))
    assert group_layers(ChannelGraph(model)) == [("a",), ("b",)]
    zeroed, small = check_shrink(model)
    assert small.get_layer("a").filters == 4 and small.get_layer("b").filters == 3


def test_softmax_across_channels_is_unprunable():
    x = keras.Input((8, 8, 3))
    y = layers.Softmax(name="softmax")(layers.Conv2D(8, 1, name="a")(x))
    graph = ChannelGraph(keras.Model(x, layers.Conv2D(2, 1)(y)))
    assert group_layers(graph) == [] and [u.layer for u in graph.unprunable] == ["softmax"]


def test_dense_neurons(check_shrink):
    x = keras.Input((20,))
    y = layers.Dense(32, activation="relu", name="h1")(x)
    y = layers.Dropout(0.1)(layers.BatchNormalization()(y))
    y = layers.Dense(16, activation="tanh", name="h2")(y)
    model = keras.Model(x, layers.Dense(3, name="out")(y))
    assert group_layers(ChannelGraph(model)) == [("h1",), ("h2",)]
    zeroed, small = check_shrink(model)
    assert (small.get_layer("h1").units, small.get_layer("h2").units) == (16, 8)


def test_nested_functional_sequential_and_shared_layers(check_shrink):
    inner_x = keras.Input((8, 8, 6))
    inner_y = layers.BatchNormalization(name="inner_bn")(layers.Conv2D(6, 3, padding="same",
                                                                       name="inner_conv")(inner_x))
    inner = keras.Model(inner_x, inner_y, name="inner")
    block = keras.Sequential([layers.Conv2D(6, 1, name="seq_conv"), layers.ReLU()], name="block")
    shared = layers.Conv2D(6, 1, name="shared")
    x = keras.Input((8, 8, 3))
    stem = layers.Conv2D(6, 3, padding="same", name="stem")(x)
    y = layers.Add()([inner(stem), stem])
    y = layers.Add()([block(y), shared(y)])
    y = layers.Concatenate()([shared(stem), y])
    model = keras.Model(x, layers.Conv2D(2, 1, name="head")(y))
    assert group_layers(ChannelGraph(model)) == [("inner_conv", "stem"), ("seq_conv", "shared")]
    zeroed, small = check_shrink(model)
    assert small.get_layer("block").get_layer("seq_conv").filters == 3
    assert small.get_layer("inner").get_layer("inner_conv").filters == 3


def test_sequential_model(check_shrink):
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(8, 3, activation="relu"),
                              layers.MaxPooling2D(), layers.Conv2D(8, 3), layers.Flatten(),
                              layers.Dense(16), layers.Dense(10)])
    assert len(ChannelGraph(model).groups) == 3
    check_shrink(model)


class Doubler(layers.Layer):
    def call(self, x):
        return x * 2.0


class MyConv(layers.Conv2D):
    """A subclass may compute anything in call(): the graph must not assume Conv2D semantics."""


@pytest.mark.parametrize("unknown", [Doubler, lambda name: MyConv(8, 1, name=name)])
def test_unknown_layers_keep_their_channels_and_are_reported(unknown, check_shrink):
    x = keras.Input((8, 8, 3))
    a = layers.Conv2D(8, 3, name="a")(x)
    b = layers.Conv2D(8, 3, name="b")(x)
    y = layers.Concatenate()([unknown(name="unknown")(a), b])
    model = keras.Model(x, layers.Conv2D(2, 1)(y))
    graph = ChannelGraph(model)
    assert group_layers(graph) == [("b",)]
    assert [(u.layer, u.reason) for u in graph.unprunable] == [
        ("unknown", "no channel rule for this layer type")]
    zeroed, small = check_shrink(model)
    assert small.get_layer("a").filters == 8 and small.get_layer("b").filters == 4


def test_model_inputs_and_outputs_keep_their_channels():
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(8, 3, name="a")(x)
    model = keras.Model(x, [layers.Conv2D(4, 1, name="out")(y), y])
    graph = ChannelGraph(model)
    assert graph.groups == [] and graph.prunable.sum() == 0


def test_skip_keeps_a_layers_output_channels():
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(8, 3, name="a")(x)
    y = layers.Conv2D(8, 3, name="b")(y)
    model = keras.Model(x, layers.Conv2D(2, 1)(y))
    assert group_layers(ChannelGraph(model, skip_layers=["a"])) == [("b",)]
    small = shrink(prune_channels(model, 0.5, skip_layers=["a"]))
    assert (small.get_layer("a").filters, small.get_layer("b").filters) == (8, 4)


@pytest.mark.every_backend
def test_channel_masks_cover_producers_and_consumers():
    x = keras.Input((8, 8, 3))
    y = layers.BatchNormalization(name="bn")(layers.Conv2D(4, 3, name="a")(x))
    model = keras.Model(x, layers.Conv2D(2, 1, name="b")(y))
    graph = ChannelGraph(model)
    remove = np.zeros(graph.num_atoms, bool)
    remove[graph.groups[0].atoms[1]] = True
    masks = {layer.name: m for layer in model.layers
             for key, m in channel_masks(graph, remove).items() if key == id(layer)}
    assert sorted(masks) == ["a", "b", "bn"]
    assert not masks["a"]["kernel"][..., 1].any() and masks["a"]["kernel"][..., 0].all()
    assert not masks["a"]["bias"][1] and not masks["bn"]["gamma"][1] and not masks["bn"]["beta"][1]
    assert "moving_variance" not in masks["bn"]
    assert not masks["b"]["kernel"][:, :, 1].any() and masks["b"]["kernel"][:, :, 0].all()


def test_shared_unknown_layer_on_different_widths(check_shrink):
    x = keras.Input((8, 8, 3))
    doubler = Doubler(name="doubler")
    a = doubler(layers.Conv2D(8, 3, name="a")(x))
    b = doubler(layers.Conv2D(4, 3, name="b")(x))
    c = layers.Conv2D(6, 3, name="c")(x)
    model = keras.Model(x, layers.Conv2D(2, 1)(layers.Concatenate()([a, b, c])))
    graph = ChannelGraph(model)
    assert group_layers(graph) == [("c",)] and len(graph.unprunable) == 1
    zeroed, small = check_shrink(model)
    assert small.get_layer("c").filters == 3
