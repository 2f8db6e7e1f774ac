"""Gradual channel pruning during training: prune_low_magnitude(..., structure="channels")."""

import keras
import numpy as np
import pytest
from keras import layers
from keras.ops import convert_to_numpy

import edgeprune as ep
from edgeprune.autodiff import accumulated, gradient_function


def small_cnn():
    x = keras.Input((8, 8, 1))
    y = layers.Conv2D(8, 3, padding="same", name="c1")(x)
    y = layers.ReLU()(layers.BatchNormalization(name="bn1")(y))
    shortcut = y
    y = layers.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = layers.Conv2D(8, 1, name="c2")(y)
    y = layers.Add()([shortcut, y])
    y = layers.Dense(12, activation="relu", name="fc")(layers.Flatten()(layers.MaxPooling2D()(y)))
    return keras.Model(x, layers.Dense(10, name="out")(y))


def digits_batch(count=64):
    (x, y), _ = ep.load_digits()
    return x[:count], y[:count]


def train(model, steps, schedule_callbacks=True):
    x, y = digits_batch()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=steps // 4, verbose=0,
              callbacks=[ep.UpdatePruningStep()] if schedule_callbacks else [])


def test_channel_wrappers_mask_every_weight_a_coupled_channel_owns():
    pruned = ep.prune_low_magnitude(small_cnn(), structure="channels")
    masked = {w.layer.name: sorted(w.weight_names) for w in ep.PruningController(pruned).wrappers}
    assert masked == {"c1": ["bias", "kernel"], "bn1": ["beta", "gamma"], "dw": ["bias", "kernel"],
                      "c2": ["bias", "kernel"], "fc": ["bias", "kernel"], "out": ["kernel"]}


@pytest.mark.parametrize("criterion, pruning_scope",
                         [("l1", "layer"), ("bn_gamma", "global"),
                          pytest.param("taylor", "layer", marks=pytest.mark.every_backend)])
def test_training_zeroes_whole_groups_and_shrink_matches(criterion, pruning_scope, tmp_path):
    model = small_cnn()
    schedule = ep.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=8, frequency=4)
    pruned = ep.prune_low_magnitude(model, pruning_schedule=schedule, structure="channels",
                                    criterion=criterion, pruning_scope=pruning_scope)
    train(pruned, steps=12)
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)  # a mid-training checkpoint resumes as channel pruning
    pruned = keras.models.load_model(path)
    train(pruned, steps=4)
    final = ep.strip_pruning(pruned)
    small = ep.shrink(final)
    assert small.get_layer("c1").filters == small.get_layer("c2").filters
    assert small.count_params() < 0.7 * model.count_params()
    x, _ = digits_batch(8)
    expected = convert_to_numpy(final(x))
    assert np.abs(convert_to_numpy(small(x)) - expected).max() <= 1e-4 * np.abs(expected).max()



def test_shrink_and_its_report_strip_a_model_that_still_has_wrappers():
    schedule = ep.ConstantSparsity(0.5, begin_step=0, frequency=4)
    pruned = ep.prune_low_magnitude(small_cnn(), pruning_schedule=schedule, structure="channels")
    train(pruned, steps=4)
    small = ep.shrink(pruned)
    assert small.get_layer("c1").filters == 4
    stripped_small = ep.shrink(ep.strip_pruning(pruned))
    for got, expected in zip(small.weights, stripped_small.weights):
        np.testing.assert_array_equal(convert_to_numpy(got), convert_to_numpy(expected))
    rows = {row.name: row for row in ep.shrink_report(pruned, small).layers}
    assert rows["c1"].channels == (8, 4)
    assert any(isinstance(layer, ep.PruneLowMagnitude) for layer in pruned.layers)  # unchanged


def test_a_weight_keras_named_itself_is_found_in_copies_and_after_loading(tmp_path):
    # ConvNeXt's LayerScale calls add_weight without a name: "variable_18" here is "variable_36"
    # in the wrapper's copy and something else again after loading.
    from keras.src.applications.convnext import LayerScale

    x = keras.Input((8, 8, 1))
    y = LayerScale(0.5, 8, name="scale")(layers.Conv2D(8, 3, padding="same", name="c1")(x))
    model = keras.Model(x, layers.Dense(10, name="out")(layers.GlobalAveragePooling2D()(y)))
    schedule = ep.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=8, frequency=4)
    pruned = ep.prune_low_magnitude(model, pruning_schedule=schedule, structure="channels",
                                    criterion="taylor")
    wrapper = pruned.get_layer("prune_low_magnitude_scale")
    assert wrapper.weight_names == ["weights[0]"] and wrapper.gradient_axes == {"weights[0]": [0]}
    train(pruned, steps=4)
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    pruned = keras.models.load_model(path)
    train(pruned, steps=8)
    final = ep.strip_pruning(pruned)
    small = ep.shrink(final)
    assert small.get_layer("scale").projection_dim == 4
    inputs, _ = digits_batch(8)
    expected = convert_to_numpy(final(inputs))
    assert np.abs(convert_to_numpy(small(inputs)) - expected).max() <= 1e-4 * np.abs(expected).max()

def test_layer_norm_over_channels_is_pruned_gradually_and_shrinks_exactly():
    x = keras.Input((8, 8, 1))
    y = layers.LayerNormalization(name="ln")(layers.Conv2D(8, 3, padding="same", name="c1")(x))
    y = layers.Conv2D(8, 3, name="c2")(layers.ReLU()(y))
    model = keras.Model(x, layers.Dense(10, name="out")(layers.Flatten()(y)))
    schedule = ep.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=8, frequency=4)
    pruned = ep.prune_low_magnitude(model, pruning_schedule=schedule, structure="channels")
    train(pruned, steps=12)
    final = ep.strip_pruning(pruned)
    small = ep.shrink(final)
    assert type(small.get_layer("ln")) is layers.LayerNormalization
    assert small.get_layer("c1").filters == small.get_layer("ln").gamma.shape[0] == 4
    x, _ = digits_batch(8)
    expected = convert_to_numpy(final(x))
    assert np.abs(convert_to_numpy(small(x)) - expected).max() <= 1e-4 * np.abs(expected).max()


def test_per_layer_sparsity_follows_the_schedule():
    schedule = ep.ConstantSparsity(0.5, begin_step=0, frequency=1)
    pruned = ep.prune_low_magnitude(small_cnn(), pruning_schedule=schedule, structure="channels",
                                    round_to=2)
    train(pruned, steps=4)
    small = ep.shrink(ep.strip_pruning(pruned))
    assert (small.get_layer("c1").filters, small.get_layer("fc").units) == (4, 6)


@pytest.mark.parametrize("options, message", [
    ({"criterion": "l3"}, "Unknown channel criterion"),
    ({"block_size": (2, 2)}, "block_size"),
    ({"skip_layers": ["nope"]}, "nope"),
])
def test_bad_channel_options(options, message):
    with pytest.raises(ValueError, match=message):
        ep.prune_low_magnitude(small_cnn(), structure="channels", **options)


def test_channel_options_without_channel_structure_are_rejected():
    with pytest.raises(ValueError, match="structure='channels' only"):
        ep.prune_low_magnitude(small_cnn(), criterion="l2")


def conv_dense_model():
    x = keras.Input((8, 8, 1))
    y = layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    return keras.Model(x, layers.Dense(10, name="out")(layers.Flatten()(y)))


@pytest.mark.every_backend
def test_taylor_accumulates_squared_first_order_terms_of_each_training_batch():
    model = conv_dense_model()
    x, y = digits_batch(32)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    conv = model.get_layer("conv")
    kernel_grad, bias_grad = gradient_function(model, [conv.kernel, conv.bias], loss)(x, y)
    kernel, bias = conv.get_weights()
    expected_out = (np.sum(kernel * kernel_grad, axis=(0, 1, 2)) ** 2 + (bias * bias_grad) ** 2)

    never = ep.ConstantSparsity(0.5, begin_step=1000)
    pruned = ep.prune_low_magnitude(model, pruning_schedule=never, structure="channels",
                                    criterion="taylor")
    pruned.compile(keras.optimizers.SGD(0.0), loss)  # one batch, weights unchanged
    pruned.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[ep.UpdatePruningStep()])
    wrapper = next(w for w in ep.PruningController(pruned).wrappers if w.layer.name == "conv")
    summed = {(wrapper.weight_names[i], axis): accumulated(acc)
              for i, axis, acc in wrapper.gradient_accumulators}
    assert sorted(summed) == [("bias", 0), ("kernel", 3)]
    np.testing.assert_allclose(summed["kernel", 3] + summed["bias", 0], expected_out,
                               rtol=1e-4, atol=1e-12)


@pytest.mark.every_backend
def test_taylor_terms_gathered_since_the_last_pruning_step_are_saved(tmp_path):
    never = ep.ConstantSparsity(0.5, begin_step=1000)
    pruned = ep.prune_low_magnitude(conv_dense_model(), pruning_schedule=never,
                                    structure="channels", criterion="taylor")
    pruned.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(*digits_batch(32), batch_size=16, verbose=0, callbacks=[ep.UpdatePruningStep()])
    pruned.save(tmp_path / "mid.keras")

    def sums(model):
        return [accumulated(acc) for w in ep.PruningController(model).wrappers
                for _, _, acc in w.gradient_accumulators]

    before = sums(pruned)
    assert any(s.any() for s in before)
    for saved, kept in zip(sums(keras.models.load_model(tmp_path / "mid.keras")), before):
        np.testing.assert_allclose(saved, kept, rtol=1e-6)


@pytest.mark.every_backend
def test_taylor_prunes_the_channels_training_shows_useless_which_l1_keeps():
    def model_with_dead_channels():
        model = conv_dense_model()
        kernel, bias = model.get_layer("conv").get_weights()
        kernel[..., :4] *= 20.0  # the largest filters...
        bias[:4] = -1e4          # ...never get past the ReLU: the loss does not depend on them
        model.get_layer("conv").set_weights([kernel, bias])
        return model

    def kept_filters(criterion):
        schedule = ep.ConstantSparsity(0.5, begin_step=4, frequency=4)
        pruned = ep.prune_low_magnitude(model_with_dead_channels(), pruning_schedule=schedule,
                                        structure="channels", criterion=criterion)
        train(pruned, steps=8)
        kernel = ep.strip_pruning(pruned).get_layer("conv").get_weights()[0]
        return np.flatnonzero(np.abs(kernel).sum(axis=(0, 1, 2))).tolist()

    assert kept_filters("taylor") == [4, 5, 6, 7]
    assert kept_filters("l1") == [0, 1, 2, 3]


@pytest.mark.every_backend
def test_taylor_accumulators_restart_after_each_pruning_step_and_warn_without_batches():
    schedule = ep.ConstantSparsity(0.5, begin_step=0, frequency=1)  # prunes before any batch
    pruned = ep.prune_low_magnitude(conv_dense_model(), pruning_schedule=schedule,
                                    structure="channels", criterion="taylor")
    controller = ep.PruningController(pruned)
    controller.begin()
    with pytest.warns(UserWarning, match="no training batch ran"):
        controller.step()
    x, y = digits_batch(16)
    pruned.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.train_on_batch(x, y)
    accumulators = [acc for w in controller.wrappers for _, _, acc in w.gradient_accumulators]
    assert any(accumulated(acc).any() for acc in accumulators)
    controller.step()
    assert not any(accumulated(acc).any() for acc in accumulators)


def test_taylor_under_mixed_precision_keeps_finite_scores():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        schedule = ep.ConstantSparsity(0.5, begin_step=4, frequency=4)
        pruned = ep.prune_low_magnitude(small_cnn(), pruning_schedule=schedule,
                                        structure="channels", criterion="taylor")
        train(pruned, steps=6)
        accumulators = [accumulated(acc) for w in ep.PruningController(pruned).wrappers
                        for _, _, acc in w.gradient_accumulators]
        assert all(np.isfinite(acc).all() for acc in accumulators)
        assert any(acc.any() for acc in accumulators)
        assert ep.shrink(ep.strip_pruning(pruned)).get_layer("c1").filters == 4
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.every_backend
def test_taylor_skips_the_non_finite_terms_of_an_overflowed_step():
    dense = ep.PruneLowMagnitude(layers.Dense(3, use_bias=False), granularity="channels",
                                 pruning_schedule=ep.ConstantSparsity(0.5, begin_step=1000),
                                 granularity_options={"criterion": "taylor"},
                                 gradient_axes={"kernel": [1]})
    model = keras.Sequential([keras.Input((1,)), dense])
    dense.layer.set_weights([np.array([[1.0, 2.0, 3.0]], "float32")])

    def overflowed(y_true, y_pred):  # a float16 loss-scaled step: one gradient is infinite
        return keras.ops.sum(y_pred * keras.ops.convert_to_tensor([np.inf, 1.0, 1.0]))

    model.compile(keras.optimizers.SGD(0.0), overflowed)
    model.fit(np.ones((1, 1), "float32"), np.zeros((1, 3), "float32"), verbose=0,
              callbacks=[ep.UpdatePruningStep()])
    np.testing.assert_array_equal(accumulated(dense.gradient_accumulators[0][2]), [0.0, 4.0, 9.0])
