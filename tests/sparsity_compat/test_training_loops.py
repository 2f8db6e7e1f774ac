"""Training as tfmot users write it: custom loops calling the callbacks, custom schedules returning
tensors, and the warnings and errors that keep a half-pruned model from shipping silently."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import edgeprune as ep
from tests.conftest import make_digits_cnn

BATCH = 32


def summary_steps(log_dir):
    steps = set()
    for path in (log_dir / "metrics").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            if any(v.tag.endswith("/sparsity") for v in event.summary.value):
                steps.add(event.step)
    return steps


def test_the_callbacks_drive_a_custom_loop_with_tfmots_hook_calls(digits, tmp_path):
    (x, y), _ = digits
    model = ep.prune_low_magnitude(make_digits_cnn(),
                                   pruning_schedule=ep.ConstantSparsity(0.5, 0, frequency=5))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam()
    model.optimizer = optimizer
    step_callback = ep.UpdatePruningStep()
    step_callback.set_model(model)
    log_callback = ep.PruningSummaries(log_dir=tmp_path)
    log_callback.set_model(model)
    unused_arg = -1

    step_callback.on_train_begin()
    for _ in range(2):
        log_callback.on_epoch_begin(epoch=unused_arg)
        for start in range(0, 10 * BATCH, BATCH):
            step_callback.on_train_batch_begin(batch=unused_arg)
            with tf.GradientTape() as tape:
                loss = loss_fn(y[start:start + BATCH], model(x[start:start + BATCH],
                                                              training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        step_callback.on_epoch_end(batch=unused_arg)
    log_callback.on_epoch_end(epoch=unused_arg)

    assert summary_steps(tmp_path) == {0, 10, 20}
    assert all(r["sparsity"] == pytest.approx(0.5, abs=0.01) for r in ep.sparsity_report(model))


@pytest.mark.every_backend
def test_a_schedule_returning_tensors_as_tfmot_documents_trains(digits):
    # The backend's tensors: TensorFlow's on TensorFlow, as in tfmot's documentation.
    class TensorSchedule(ep.PruningSchedule):
        def __call__(self, step):
            return keras.ops.equal(step % 5, 0), keras.ops.convert_to_tensor(0.5)

        def get_config(self):
            return {}

    model = ep.prune_low_magnitude(make_digits_cnn(), pruning_schedule=TensorSchedule())
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    (x, y), _ = digits
    model.fit(x[:320], y[:320], batch_size=BATCH, verbose=0, callbacks=[ep.UpdatePruningStep()])
    assert all(r["sparsity"] == pytest.approx(0.5, abs=0.01) for r in ep.sparsity_report(model))


@pytest.mark.parametrize("log_dir", ["", None, 3, ["logs"]])
def test_pruning_summaries_refuses_a_log_dir_that_is_not_a_path(log_dir):
    with pytest.raises(ValueError, match="log_dir must be a non-empty path"):
        ep.PruningSummaries(log_dir=log_dir)


@pytest.mark.every_backend
def test_training_without_the_callback_raises_a_short_error_of_its_own(digits):
    model = ep.prune_low_magnitude(make_digits_cnn())
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    (x, y), _ = digits
    with pytest.raises(ep.MissingPruningStepError, match="UpdatePruningStep") as caught:
        model.fit(x[:64], y[:64], verbose=0)
    assert len(str(caught.value)) < 600  # tf.debugging.Assert's error ran to 3,000 characters


def test_strip_and_export_warn_when_early_stopping_ended_pruning_before_its_target(digits):
    (x, y), _ = digits
    schedule = ep.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000, frequency=10)
    model = ep.prune_low_magnitude(make_digits_cnn(), pruning_schedule=schedule)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    model.fit(x, y, batch_size=BATCH, epochs=20, verbose=0,
              callbacks=[ep.UpdatePruningStep(), stop])
    with pytest.warns(UserWarning, match=r"stopped at step \d+, before its schedule reached 80% "
                                         r"sparsity at step 1000: 4 pruned layer\(s\) are \d+% "):
        stripped = ep.strip_pruning(model)
    # The export of a model still wrapped converts its stripped copy, with the same warning.
    with pytest.warns(UserWarning, match="before its schedule reached 80%"):
        converted = ep.export_tflite(model)
    assert converted == ep.export_tflite(stripped)


def test_a_finished_schedule_strips_without_a_warning(digits):
    (x, y), _ = digits
    model = ep.prune_low_magnitude(make_digits_cnn(), pruning_schedule=ep.ConstantSparsity(
        0.5, begin_step=0, frequency=5))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:320], y[:320], batch_size=BATCH, verbose=0, callbacks=[ep.UpdatePruningStep()])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ep.strip_pruning(model)


@pytest.mark.every_backend
def test_masks_forced_to_their_target_strip_without_a_warning():
    # One-shot pruning (as each iterative_magnitude_pruning round does) forces the masks before
    # any training step: the schedule's first pruning step never comes, the target is reached.
    model = ep.prune_low_magnitude(make_digits_cnn(), pruning_schedule=ep.ConstantSparsity(
        0.8, begin_step=0, end_step=0))
    controller = ep.PruningController(model)
    controller.begin()
    controller.update_masks(force=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ep.strip_pruning(model)


def test_global_scope_is_judged_on_the_layers_it_ranks_together():
    # Ranked together, a layer of large weights keeps more than 20% and one of small weights
    # less: only their sum is at the target.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(16), keras.layers.Dense(16)])
    model.layers[0].kernel.assign(10 * model.layers[0].kernel)
    pruned = ep.prune_low_magnitude(model, pruning_scope="global", pruning_schedule=(
        ep.ConstantSparsity(0.8, begin_step=0, end_step=100)))
    controller = ep.PruningController(pruned)
    controller.begin()
    controller.update_masks(force=True)
    layer_sparsities = [1 - float(np.mean(keras.ops.convert_to_numpy(w.masks[0])))
                        for w in pruned.layers]
    assert min(layer_sparsities) < 0.7 < 0.9 < max(layer_sparsities)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ep.strip_pruning(pruned)
