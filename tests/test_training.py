"""Real training on the bundled digits set: sparsity, resume, callbacks, TFLite."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray

import edgeprune as ep
from tests.conftest import make_digits_cnn

BATCH = 32


def compile_and_fit(model, data, epochs, callbacks=(), **fit_kwargs):
    (x, y), _ = data
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, shuffle=False,
              callbacks=list(callbacks), **fit_kwargs)
    return model


def steps_per_epoch(data):
    return int(np.ceil(len(data[0][0]) / BATCH))


def test_gradual_pruning_reaches_target_and_keeps_accuracy(digits):
    end = 3 * steps_per_epoch(digits)
    pruned = ep.prune_low_magnitude(
        make_digits_cnn(), pruning_schedule=ep.PolynomialDecay(0.0, 0.8, 0, end, frequency=10))
    compile_and_fit(pruned, digits, epochs=5, callbacks=[ep.UpdatePruningStep()])
    final = ep.strip_pruning(pruned)
    assert not any(isinstance(l, ep.PruneLowMagnitude) for l in final.layers)
    for row in ep.sparsity_report(final):
        assert row["sparsity"] == pytest.approx(0.8, abs=0.01), row
    (_, _), (x_test, y_test) = digits
    accuracy = np.mean(np.argmax(final.predict(x_test, verbose=0), -1) == y_test)
    assert accuracy > 0.85

    # The stripped model converts and LiteRT computes what Keras computes.
    converter = tf.lite.TFLiteConverter.from_keras_model(final)
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], x_test[:16].shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x_test[:16])
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(out["index"]),
                               final.predict(x_test[:16], verbose=0), atol=1e-4)


@pytest.mark.every_backend
def test_training_without_the_callback_says_so(digits):
    pruned = ep.prune_low_magnitude(make_digits_cnn())
    with pytest.raises(Exception, match="UpdatePruningStep"):
        compile_and_fit(pruned, digits, epochs=1)


def test_save_mid_training_and_resume_bit_identically(digits, tmp_path):
    schedule = ep.PolynomialDecay(0.0, 0.9, 0, 4 * steps_per_epoch(digits), frequency=5)
    pruned = ep.prune_low_magnitude(make_digits_cnn(), pruning_schedule=schedule,
                                    sparsity_m_by_n=None)
    compile_and_fit(pruned, digits, epochs=2, callbacks=[ep.UpdatePruningStep()])
    path = tmp_path / "mid.keras"
    pruned.save(path)

    restored = keras.models.load_model(path)  # no custom_objects, safe_mode on
    for a, b in zip(pruned.get_weights(), restored.get_weights()):
        assert np.array_equal(a, b)
    wrappers = ep.PruningController(restored).wrappers
    assert {int(w.pruning_step.numpy()) for w in wrappers} == {2 * steps_per_epoch(digits)}
    assert wrappers[0].pruning_schedule == schedule

    # Both continue one more epoch from the same state and stay bit-identical.
    (x, y), _ = digits
    for model in (pruned, restored):
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False,
                  callbacks=[ep.UpdatePruningStep()])
    for a, b in zip(pruned.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(wrappers[0].pruning_step.numpy()) == 3 * steps_per_epoch(digits)


def test_m_by_n_survives_keras_round_trip(digits, tmp_path):
    pruned = ep.prune_low_magnitude(make_digits_cnn(), sparsity_m_by_n=(2, 4))
    compile_and_fit(pruned, digits, epochs=1, callbacks=[ep.UpdatePruningStep()])
    pruned.save(tmp_path / "nm.keras")
    restored = keras.models.load_model(tmp_path / "nm.keras")
    assert {w.sparsity_m_by_n for w in ep.PruningController(restored).wrappers} == {(2, 4)}
    compile_and_fit(restored, digits, epochs=1, callbacks=[ep.UpdatePruningStep()])
    for layer in ep.strip_pruning(restored).layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = np.moveaxis(layer.kernel.numpy(), -2, -1)
            groups = (kernel != 0).reshape(-1, 4) if kernel.shape[-1] % 4 == 0 else None
            if groups is not None:
                assert groups.sum(axis=-1).max() <= 2


@pytest.mark.every_backend
def test_global_scope_ranks_across_layers(digits):
    pruned = ep.prune_low_magnitude(make_digits_cnn(), pruning_scope="global",
                                    pruning_schedule=ep.ConstantSparsity(0.7, 0, frequency=20))
    compile_and_fit(pruned, digits, epochs=1, callbacks=[ep.UpdatePruningStep()])
    report = ep.sparsity_report(ep.strip_pruning(pruned))
    zeros, size = sum(r["zeros"] for r in report), sum(r["size"] for r in report)
    assert zeros / size == pytest.approx(0.7, abs=0.002)
    assert len({round(r["sparsity"], 2) for r in report}) > 1  # layers differ, the total is met


@pytest.mark.every_backend
def test_block_sparsity_on_conv_kernels(digits):
    pruned = ep.prune_low_magnitude(make_digits_cnn(), block_size=(1, 4),
                                    pruning_schedule=ep.ConstantSparsity(0.5, 0, frequency=20))
    compile_and_fit(pruned, digits, epochs=1, callbacks=[ep.UpdatePruningStep()])
    for layer in ep.strip_pruning(pruned).layers:
        if isinstance(layer, keras.layers.Conv2D):
            blocks = (layer.kernel.numpy() != 0).reshape(-1, layer.filters // 4, 4)
            assert np.all(blocks.min(-1) == blocks.max(-1))


def test_custom_training_loop_with_the_controller(digits):
    (x, y), _ = digits
    pruned = ep.prune_low_magnitude(make_digits_cnn(),
                                    pruning_schedule=ep.ConstantSparsity(0.6, 0, frequency=10))
    optimizer = keras.optimizers.Adam()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, pruned(xb, training=True))
        grads = tape.gradient(loss, pruned.trainable_variables)
        optimizer.apply_gradients(zip(grads, pruned.trainable_variables))
        return loss

    controller = ep.PruningController(pruned)
    controller.begin()
    for start in range(0, 640, BATCH):
        controller.step()
        train_step(x[start:start + BATCH], y[start:start + BATCH])
    controller.end_epoch()
    assert controller.current_step == 20
    for row in ep.sparsity_report(pruned):
        assert row["sparsity"] == pytest.approx(0.6, abs=0.01)


@pytest.mark.every_backend
def test_pruning_summaries_write_tensorboard_events(digits, tmp_path):
    pruned = ep.prune_low_magnitude(make_digits_cnn(), pruning_schedule=ep.ConstantSparsity(
        0.5, 0, frequency=20))
    compile_and_fit(pruned, digits, epochs=1,
                    callbacks=[ep.UpdatePruningStep(), ep.PruningSummaries(tmp_path)])
    events = EventAccumulator(str(tmp_path / "metrics"))  # tensorboard's own reader
    events.Reload()
    tags = events.Tags()["tensors"]
    sparsity = [t for t in tags if t.endswith("kernel/sparsity")]
    assert len(sparsity) == 4 and sum(t.endswith("kernel/threshold") for t in tags) == 4
    last = events.Tensors(sparsity[0])[-1]
    assert last.step == steps_per_epoch(digits)
    assert make_ndarray(last.tensor_proto) == pytest.approx(0.5, abs=0.01)


@pytest.mark.every_backend
def test_mixed_precision_training(digits):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = make_digits_cnn()
        pruned = ep.prune_low_magnitude(model,
                                        pruning_schedule=ep.ConstantSparsity(0.8, 0, frequency=10))
        compile_and_fit(pruned, digits, epochs=1, callbacks=[ep.UpdatePruningStep()])
        for row in ep.sparsity_report(ep.strip_pruning(pruned)):
            assert row["sparsity"] == pytest.approx(0.8, abs=0.01)
    finally:
        keras.mixed_precision.set_global_policy("float32")


MIRRORED = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    sys.path.insert(0, os.getcwd())
    import edgeprune as ep
    from tests.conftest import make_digits_cnn
    (x, y), _ = ep.load_digits()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        pruned = ep.prune_low_magnitude(
            make_digits_cnn(), pruning_schedule=ep.PolynomialDecay(0.0, 0.8, 0, 40, frequency=10))
        pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, batch_size=64, epochs=3, verbose=0, callbacks=[ep.UpdatePruningStep()])
    with strategy.scope():  # Taylor accumulators are summed over the replicas
        channels = ep.prune_low_magnitude(
            make_digits_cnn(), pruning_schedule=ep.ConstantSparsity(0.5, 10, frequency=10),
            structure="channels", criterion="taylor")
        channels.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    channels.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[ep.UpdatePruningStep()])
    print(ep.shrink(ep.strip_pruning(channels)).count_params() / make_digits_cnn().count_params())
    print(sorted(round(r["sparsity"], 3) for r in ep.sparsity_report(ep.strip_pruning(pruned))))
""")


def test_mirrored_strategy_on_two_logical_cpus_prunes_weights_and_taylor_channels():
    # Logical devices must be configured before TensorFlow starts: its own interpreter.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                            cwd=root, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    *_, kept_params, sparsities = result.stdout.strip().splitlines()
    sparsities = eval(sparsities)
    assert len(sparsities) == 4 and all(abs(s - 0.8) < 0.01 for s in sparsities)
    assert float(kept_params) < 0.5  # half the channels of each group: about a quarter of the weights


@pytest.mark.every_backend
def test_mid_epoch_checkpoint_records_the_current_step(digits, tmp_path):
    pruned = ep.prune_low_magnitude(make_digits_cnn())
    path = tmp_path / "ckpt.keras"
    checkpoint = keras.callbacks.ModelCheckpoint(path, save_freq=7)
    compile_and_fit(pruned, digits, epochs=1, callbacks=[ep.UpdatePruningStep(), checkpoint])
    last_save = steps_per_epoch(digits) // 7 * 7
    restored = keras.models.load_model(path)
    assert {int(w.pruning_step.numpy()) for w in ep.PruningController(restored).wrappers} == {
        last_save}


@pytest.mark.every_backend
def test_stripped_zeros_are_positive_zeros(digits):
    # -0.0 counts as zero but its bits (0x80000000) break the zero runs gzip needs.
    pruned = ep.prune_low_magnitude(make_digits_cnn(), pruning_schedule=ep.ConstantSparsity(
        0.8, 0, frequency=10))
    compile_and_fit(pruned, digits, epochs=1, callbacks=[ep.UpdatePruningStep()])
    kernels = [w for w in ep.strip_pruning(pruned).get_weights() if w.ndim > 1]
    assert sum(int((k == 0).sum()) for k in kernels) > 0
    assert not any(np.signbit(k[k == 0]).any() for k in kernels)
