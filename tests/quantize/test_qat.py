import keras
import numpy as np
import pytest

import edgeprune as ep
from device_bench.flatbuffer import operator_names, weight_tensors
from edgeprune.quantize.check import make_interpreter
from edgeprune.quantize.qat import is_quantize_aware
from tests.quantize.models import compile_for_digits, digits_cnn, kernel_sparsities

TOLERANCE = 0.005


@pytest.fixture(scope="module")
def pruned_then_qat(trained_cnn, digits):
    """The full chain: prune with the core to 80%, strip, QAT for an epoch; returns both models."""
    (x, y), _ = digits
    schedule = ep.ConstantSparsity(0.8, begin_step=0, frequency=10)
    pruned = compile_for_digits(ep.prune_low_magnitude(trained_cnn, pruning_schedule=schedule))
    pruned.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[ep.UpdatePruningStep()])
    stripped = compile_for_digits(ep.strip_pruning(pruned))
    qat = compile_for_digits(ep.quantize_model(stripped), learning_rate=1e-3)
    qat.fit(x, y, epochs=1, batch_size=32, verbose=0)
    return stripped, qat


def test_qat_keeps_every_pruned_kernels_sparsity_through_conversion(pruned_then_qat, digits):
    (x, _), _ = digits
    stripped, qat = pruned_then_qat
    # DepthwiseConv2D is not pruned by default (as in tfmot): check the kernels that were.
    before = {name: s for name, s in kernel_sparsities(stripped).items() if s > 0}
    assert len(before) == 2 and min(before.values()) > 0.7
    tflite = ep.export_tflite(qat, quantize="int8", representative_data=x[:100])
    after = {w.name: w.sparsity for w in weight_tensors(tflite)}
    # TFLite names kernels after their Keras layers: match each kernel by layer name.
    for layer_name, sparsity in before.items():
        matches = [s for name, s in after.items() if f"/{layer_name}_" in name or
                   f"/{layer_name}/" in name]
        assert len(matches) == 1, (layer_name, list(after))
        assert abs(matches[0] - sparsity) <= TOLERANCE, layer_name


def test_without_preserve_sparsity_qat_lets_zeros_drift(sparse_cnn, digits):
    (x, y), _ = digits
    plain = compile_for_digits(ep.quantize_model(sparse_cnn, preserve_sparsity=False))
    plain.fit(x[:320], y[:320], epochs=1, batch_size=32, verbose=0)
    stripped = ep.strip_quantization(plain)
    before, after = kernel_sparsities(sparse_cnn), kernel_sparsities(stripped)
    assert any(after[name] < before[name] - 0.1 for name in before)


def test_qat_model_converts_to_the_same_full_int8_graph_as_ptq(pruned_then_qat, digits):
    (x, _), (x_test, y_test) = digits
    stripped, qat = pruned_then_qat
    qat_tflite = ep.export_tflite(qat, representative_data=x[:100], int8_io=True)
    ptq_tflite = ep.export_tflite(stripped, quantize="int8", representative_data=x[:100],
                                  int8_io=True)
    assert operator_names(qat_tflite) == operator_names(ptq_tflite)
    activation_types = {d["dtype"] for d in make_interpreter(qat_tflite).get_tensor_details()
                        if d["name"] not in {w.name for w in weight_tensors(qat_tflite)}}
    assert activation_types <= {np.int8, np.int32}  # int32: biases and shape constants
    report = ep.validate_tflite(qat_tflite, qat, x_test, y_test)
    assert report.tflite_accuracy >= report.keras_accuracy - 0.02


def test_strip_quantization_snaps_kernels_onto_the_converters_int8_grid(pruned_then_qat, digits):
    (x, _), _ = digits
    _, qat = pruned_then_qat
    dense_kernel = [layer for layer in ep.strip_quantization(qat).layers
                    if isinstance(layer, keras.layers.Dense)][-1].kernel.numpy()
    interpreter = make_interpreter(ep.export_tflite(qat, representative_data=x[:50]))
    # TFLite stores a Dense kernel as [units, inputs] with one scale per unit.
    detail = next(d for d in interpreter.get_tensor_details()
                  if tuple(d["shape"]) == dense_kernel.T.shape)
    scales = detail["quantization_parameters"]["scales"]
    stored = interpreter.get_tensor(detail["index"]).astype(np.float32)
    np.testing.assert_allclose(stored * scales[:, None], dense_kernel.T, rtol=1e-5, atol=1e-7)


def test_fused_producers_do_not_quantize_their_outputs(sparse_cnn):
    qat = ep.quantize_model(sparse_cnn)
    quantizes_output = {layer.layer.name: layer.quantize_output for layer in qat.layers
                        if isinstance(layer, ep.QuantizeWrapper)}
    conv, bn, relu, depthwise, dense = (layer.name for layer in sparse_cnn.layers
                                        if layer.weights or isinstance(layer, keras.layers.ReLU))
    # Conv -> BN -> ReLU is one TFLite op: only the ReLU output is a real int8 tensor, and the BN
    # has neither kernel nor output to quantize.
    assert quantizes_output == {conv: False, relu: True, depthwise: True, dense: True}


def test_quantize_model_leaves_the_input_model_unchanged(sparse_cnn, digits):
    (x, y), _ = digits
    before = [w.copy() for w in sparse_cnn.get_weights()]
    qat = compile_for_digits(ep.quantize_model(sparse_cnn))
    qat.fit(x[:64], y[:64], epochs=1, verbose=0)
    for old, new in zip(before, sparse_cnn.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_qat_model_saves_and_loads(pruned_then_qat, digits, tmp_path):
    _, (x_test, _) = digits
    _, qat = pruned_then_qat
    path = tmp_path / "qat.keras"
    qat.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x_test, verbose=0), qat.predict(x_test, verbose=0),
                               atol=1e-6)


def test_wrapper_get_config_round_trips():
    wrapper = ep.QuantizeWrapper(keras.layers.Dense(3), quantize_output=False,
                                 preserve_sparsity=False, ema_decay=0.9)
    clone = ep.QuantizeWrapper.from_config(wrapper.get_config())
    assert (clone.quantize_output, clone.preserve_sparsity, clone.ema_decay) == (False, False, 0.9)


def test_pruning_wrappers_must_be_stripped_first():
    pruned = ep.prune_low_magnitude(digits_cnn())
    with pytest.raises(ValueError, match="strip_pruning"):
        ep.quantize_model(pruned)


def test_qat_model_refuses_other_modes(sparse_cnn, digits):
    (x, _), _ = digits
    with pytest.raises(ValueError, match="trained for int8"):
        ep.export_tflite(ep.quantize_model(sparse_cnn), quantize="float16")


class SubclassedCNN(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4, 3, activation="relu")
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(10)

    def call(self, inputs):
        return self.dense(self.flatten(self.conv(inputs)))


def test_sequential_and_subclassed_models_train_and_export(digits):
    (x, y), (x_test, _) = digits
    sequential = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                                   keras.layers.BatchNormalization(), keras.layers.ReLU(),
                                   keras.layers.Flatten(), keras.layers.Dense(10)])
    subclassed = SubclassedCNN()
    subclassed(x[:1])
    for model, kwargs in [(sequential, {}), (subclassed, {"input_shape": (8, 8, 1)})]:
        qat = compile_for_digits(ep.quantize_model(model))
        qat.fit(x[:256], y[:256], epochs=1, verbose=0)
        tflite = ep.export_tflite(qat, representative_data=x[:50], **kwargs)
        assert ep.validate_tflite(tflite, qat, x_test[:100]).top1_agreement >= 0.9


def test_quantize_apply_quantizes_only_annotated_layers(digits):
    (x, y), _ = digits
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Conv2D(4, 3, activation="relu", name="float_conv")(inputs)
    hidden = keras.layers.Flatten()(hidden)
    outputs = ep.quantize_annotate_layer(keras.layers.Dense(10, name="int8_dense"))(hidden)
    annotated = keras.Model(inputs, outputs)
    qat = compile_for_digits(ep.quantize_apply(annotated))
    wrapped = [layer.layer.name for layer in qat.layers if isinstance(layer, ep.QuantizeWrapper)]
    assert wrapped == ["int8_dense"]
    qat.fit(x[:64], y[:64], epochs=1, verbose=0)
    assert ep.validate_tflite(ep.export_tflite(qat, representative_data=x[:50]), qat,
                              x[:100]).top1_agreement >= 0.9


def test_annotating_every_layer_quantizes_like_quantize_model(sparse_cnn):
    applied = ep.quantize_apply(ep.quantize_annotate_model(sparse_cnn))
    direct = ep.quantize_model(sparse_cnn)
    assert [type(layer).__name__ for layer in applied.layers] == \
        [type(layer).__name__ for layer in direct.layers]
    with pytest.raises(ValueError, match="no layer annotated"):
        ep.quantize_apply(sparse_cnn)


@pytest.mark.every_backend
def test_qat_trains_keeps_zeros_snaps_to_the_grid_and_reloads_on_this_backend(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 1))
    hidden = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    hidden = keras.layers.ReLU(name="relu")(keras.layers.BatchNormalization(name="bn")(hidden))
    outputs = keras.layers.Dense(3, name="dense")(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    dense = model.get_layer("dense")
    kernel = keras.ops.convert_to_numpy(dense.kernel)
    pruned = np.arange(kernel.size).reshape(kernel.shape) % 2 == 0
    dense.kernel.assign(np.where(pruned, 0.0, kernel))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6, 6, 1)).astype("float32"), rng.integers(0, 3, 32)

    qat = ep.quantize_model(model)
    assert is_quantize_aware(qat) and not is_quantize_aware(model)
    qat.compile(keras.optimizers.Adam(1e-2),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, batch_size=8, epochs=1, verbose=0)
    relu = qat.get_layer("quant_relu")
    assert float(keras.ops.convert_to_numpy(relu.range_updates)) == 4.0
    assert float(keras.ops.convert_to_numpy(relu.output_max)) > 0.0

    trained = keras.ops.convert_to_numpy(ep.strip_quantization(qat).get_layer("dense").kernel)
    assert not trained[pruned].any() and not np.allclose(trained[~pruned], kernel[~pruned])
    steps = trained / (np.abs(trained).max(axis=0) / 127.0)  # per output channel
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)

    path = tmp_path / "qat.keras"
    qat.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x[:4])),
                               keras.ops.convert_to_numpy(qat(x[:4])), atol=1e-6)

    annotated = keras.models.clone_model(model, clone_function=lambda layer: (
        ep.quantize_annotate_layer(layer) if layer.name == "dense" else layer.__class__.from_config(
            layer.get_config())))
    applied = ep.quantize_apply(annotated)
    assert [layer.layer.name for layer in applied.layers
            if isinstance(layer, ep.QuantizeWrapper)] == ["dense"]
