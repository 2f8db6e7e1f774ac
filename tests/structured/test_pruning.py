"""Criteria, selection options, one-shot pruning, shrink's report, saving and bad input."""

import keras
import numpy as np
import pytest
from keras import layers

from edgeprune.autodiff import gradient_function
from edgeprune.structured import (ChannelGraph, channel_scores, prune_channels, select_channels,
                                  shrink, shrink_report)
from edgeprune.structured.criteria import get_criterion
from edgeprune.structured.oneshot import data_gradient_terms


def conv_bn_model(filters=8):
    x = keras.Input((6, 6, 2))
    y = layers.Conv2D(filters, 3, padding="same", name="a")(x)
    y = layers.ReLU()(layers.BatchNormalization(name="bn")(y))
    y = layers.Conv2D(filters, 1, name="b")(y)
    return keras.Model(x, layers.Dense(3, name="head")(layers.GlobalAveragePooling2D()(y)))


def set_channel_magnitudes(model, name, magnitudes):
    kernel, bias = model.get_layer(name).get_weights()
    kernel = np.ones_like(kernel) * np.asarray(magnitudes, "float32")
    model.get_layer(name).set_weights([kernel, np.zeros_like(bias)])


def kept_filters(model, name):
    kernel = model.get_layer(name).get_weights()[0]
    return np.flatnonzero(np.abs(kernel.reshape(-1, kernel.shape[-1])).sum(axis=0) > 0).tolist()


@pytest.mark.every_backend
def test_magnitude_criteria_remove_the_smallest_channels():
    model = conv_bn_model()
    set_channel_magnitudes(model, "a", [5, 1, 7, 2, 8, 3, 6, 4])
    for criterion in ("l1", "l2"):
        assert kept_filters(prune_channels(model, 0.5, criterion=criterion), "a") == [0, 2, 4, 6]


@pytest.mark.every_backend
def test_bn_gamma_criterion_ranks_by_gamma():
    model = conv_bn_model()
    set_channel_magnitudes(model, "a", [5, 1, 7, 2, 8, 3, 6, 4])
    gamma, beta, mean, var = model.get_layer("bn").get_weights()
    gamma = np.array([1, 9, 1, 9, 1, 9, 1, 9], "float32")
    model.get_layer("bn").set_weights([gamma, beta, mean, var])
    assert kept_filters(prune_channels(model, 0.5, criterion="bn_gamma"), "a") == [1, 3, 5, 7]


@pytest.mark.every_backend
def test_taylor_criterion_removes_channels_the_loss_does_not_see():
    model = conv_bn_model()
    kernel, bias = model.get_layer("b").get_weights()
    kernel[:, :, 1::2, :] = 0.0  # odd channels of "a" do not reach the output
    model.get_layer("b").set_weights([kernel, bias])
    x = np.random.default_rng(0).normal(size=(16, 6, 6, 2)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 16)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    pruned = prune_channels(model, 0.5, criterion="taylor", data=(x, y), loss=loss,
                            skip_layers=["b"])
    assert kept_filters(pruned, "a") == [0, 2, 4, 6]


@pytest.mark.every_backend
def test_loss_gradients_come_from_the_backend_and_are_zero_where_the_loss_does_not_reach():
    model = keras.Sequential([keras.Input((3,)), layers.Dense(1, use_bias=False)])
    kernel = model.layers[0].kernel
    kernel.assign(np.array([[1.0], [-2.0], [0.5]], "float32"))
    elsewhere = layers.Dense(2)
    elsewhere.build((None, 3))
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    y = np.random.default_rng(1).normal(size=(5, 1)).astype("float32")
    gradients = gradient_function(model, [kernel, elsewhere.kernel], "mse")(x, y)
    residual = x @ keras.ops.convert_to_numpy(kernel) - y
    np.testing.assert_allclose(gradients[0], 2 * x.T @ residual / len(x), rtol=1e-5)
    np.testing.assert_array_equal(gradients[1], np.zeros((3, 2), "float32"))


@pytest.mark.every_backend
def test_taylor_reads_a_tf_data_dataset_as_its_batches():
    import tensorflow as tf

    model = conv_bn_model()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 16)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    graph = ChannelGraph(model)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    batches = [(x[:8], y[:8]), (x[8:], y[8:])]
    from_dataset = data_gradient_terms(graph, get_criterion("taylor"), dataset, loss)
    for key, terms in data_gradient_terms(graph, get_criterion("taylor"), batches, loss).items():
        np.testing.assert_allclose(from_dataset[key], terms, rtol=1e-6)


def test_taylor_over_several_batches_sums_each_batch_squared_terms():
    import tensorflow as tf

    model = conv_bn_model()
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(8, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 8))
               for _ in range(2)]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    graph = ChannelGraph(model)
    kernel = model.get_layer("a").kernel
    expected = 0.0
    for x, y in batches:
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(loss(y, model(x, training=False)))
        grad = tape.gradient(value, kernel.value).numpy()
        expected = expected + (np.asarray(kernel) * grad).sum(axis=(0, 1, 2)) ** 2
    key = (id(model.get_layer("a")), "kernel", 3)
    from_list = data_gradient_terms(graph, get_criterion("taylor"), batches, loss)[key]
    np.testing.assert_allclose(from_list, expected, rtol=1e-5)
    xs, ys = (np.concatenate(parts) for parts in zip(*batches))
    dataset = tf.data.Dataset.from_tensor_slices((xs, ys)).batch(8)
    np.testing.assert_allclose(data_gradient_terms(graph, get_criterion("taylor"), dataset, loss)[key], expected,
                               rtol=1e-5)
    with pytest.raises(ValueError, match="got a ndarray as a batch.*tuple \\(x, y\\)"):
        data_gradient_terms(graph, get_criterion("taylor"), [xs, ys], loss)
    with pytest.raises(ValueError, match="no batches"):
        data_gradient_terms(graph, get_criterion("taylor"), [], loss)

def test_round_to_and_min_channels():
    graph = ChannelGraph(conv_bn_model(filters=12))
    scores = np.arange(graph.num_atoms, dtype=float)
    for options, kept in [({}, 3), ({"round_to": 4}, 4), ({"min_channels": 5}, 5),
                          ({"min_channels": 5, "round_to": 4}, 8)]:
        remove = select_channels(graph, scores, 0.75, **options)
        assert [len(g) - int(remove[g.atoms].sum()) for g in graph.groups] == [kept, kept]


def test_global_ranking_prunes_weak_groups_more():
    model = conv_bn_model()
    set_channel_magnitudes(model, "a", [1, 1, 1, 1, 1, 1, 1, 100])
    set_channel_magnitudes(model, "b", [1, 2, 3, 4, 5, 6, 7, 8])
    small = shrink(prune_channels(model, 0.5, pruning_scope="global"))
    assert small.get_layer("a").filters < 4 < small.get_layer("b").filters


def test_sparsity_zero_removes_nothing():
    model = conv_bn_model()
    assert shrink(prune_channels(model, 0.0)).count_params() == model.count_params()


@pytest.mark.every_backend
def test_shrink_report_counts_channels_params_and_macs():
    model = conv_bn_model()
    pruned = prune_channels(model, 0.5)
    report = shrink_report(pruned, shrink(pruned))
    rows = {row.name: row for row in report.layers}
    assert rows["a"].channels == (8, 4) and rows["b"].channels == (8, 4)
    assert rows["a"].params == (3 * 3 * 2 * 8 + 8, 3 * 3 * 2 * 4 + 4)
    assert rows["a"].macs == (6 * 6 * 3 * 3 * 2 * 8, 6 * 6 * 3 * 3 * 2 * 4)
    assert rows["b"].macs == (6 * 6 * 8 * 8, 6 * 6 * 4 * 4)
    assert report.total("params") == (model.count_params(), shrink(pruned).count_params())
    assert "a | Conv2D | 8 → 4" in str(report)


def test_shrunk_model_saves_reloads_in_safe_mode_and_converts(tmp_path):
    import tensorflow as tf

    model = conv_bn_model()
    small = shrink(prune_channels(model, 0.5))
    path = str(tmp_path / "small.keras")
    small.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(reloaded(x), small(x), atol=1e-6)
    assert len(tf.lite.TFLiteConverter.from_keras_model(reloaded).convert()) > 0


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(4)

    def call(self, x):
        return self.dense(x)


@pytest.mark.parametrize("call, message", [
    (lambda m: prune_channels(m, 1.0), "sparsity must lie in"),
    (lambda m: prune_channels(m, -0.1), "sparsity must lie in"),
    (lambda m: prune_channels(m, 0.5, criterion="l3"), "Unknown channel criterion 'l3'"),
    (lambda m: prune_channels(m, 0.5, pruning_scope="best"), "pruning_scope must be one of"),
    (lambda m: prune_channels(m, 0.5, round_to=0), "round_to"),
    (lambda m: prune_channels(m, 0.5, skip_layers=["nope"]), "skip_layers names layers .*'nope'"),
    (lambda m: prune_channels(m, 0.5, criterion="taylor"), "needs data"),
    (lambda m: channel_scores(ChannelGraph(m), "taylor"), "needs gradients"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(conv_bn_model())


def test_subclassed_model_is_rejected_with_advice():
    model = Subclassed()
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed model.*functional API"):
        shrink(model)


def test_a_path_instead_of_a_model_is_told_to_load_it():
    with pytest.raises(ValueError, match="needs a keras.Model; got str 'pruned.keras'.*load_model"):
        shrink("pruned.keras")


def test_unbuilt_sequential_is_told_to_get_an_input():
    model = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="'.*' is not built: give it a keras.Input"):
        prune_channels(model, 0.5)
