import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import edgeprune as ep
from edgeprune.quantize.inputs import representative_samples
from device_bench.flatbuffer import weight_tensors
from edgeprune.quantize.check import make_interpreter
from tests.quantize.models import digits_cnn

ALL_MODES = [None, "dynamic", "float16", "int8", "int16x8"]


@pytest.mark.parametrize("quantize", ALL_MODES)
def test_every_mode_converts_runs_and_keeps_accuracy(quantize, trained_cnn, digits):
    (x, _), (x_test, y_test) = digits
    data = x[:100] if quantize in ("int8", "int16x8") else None
    tflite = ep.export_tflite(trained_cnn, quantize=quantize, representative_data=data)
    report = ep.validate_tflite(tflite, trained_cnn, x_test, y_test)
    assert report.num_samples == len(x_test)
    assert report.tflite_accuracy >= report.keras_accuracy - 0.02
    assert report.top1_agreement >= 0.97
    if quantize is None:
        assert report.max_abs_diff < 1e-3


def test_int8_io_gives_int8_input_and_output(trained_cnn, digits):
    (x, _), (x_test, y_test) = digits
    tflite = ep.export_tflite(trained_cnn, quantize="int8", representative_data=x[:100],
                              int8_io=True)
    interpreter = make_interpreter(tflite)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert {w.dtype for w in weight_tensors(tflite)} == {"int8"}
    report = ep.validate_tflite(tflite, trained_cnn, x_test, y_test)
    assert report.tflite_accuracy >= report.keras_accuracy - 0.02


def test_int8_without_int8_io_keeps_float_edges_and_int8_weights(trained_cnn, digits):
    (x, _), _ = digits
    tflite = ep.export_tflite(trained_cnn, quantize="int8", representative_data=x[:50])
    interpreter = make_interpreter(tflite)
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    assert {w.dtype for w in weight_tensors(tflite)} == {"int8"}


def test_int16x8_has_int16_activations(trained_cnn, digits):
    (x, _), _ = digits
    tflite = ep.export_tflite(trained_cnn, quantize="int16x8", representative_data=x[:50])
    dtypes = {d["dtype"] for d in make_interpreter(tflite).get_tensor_details()}
    assert np.int16 in dtypes and np.int8 in dtypes


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_sparse_storage_runs_like_dense_storage(quantize, sparse_cnn, digits):
    (x, _), (x_test, _) = digits
    data = x[:50] if quantize else None
    dense = ep.export_tflite(sparse_cnn, quantize=quantize, representative_data=data)
    sparse = ep.export_tflite(sparse_cnn, quantize=quantize, representative_data=data,
                              sparse_storage=True)
    if quantize is None:
        # float32 values cost more than their indices; for int8 the indices can cost more.
        assert len(sparse) < len(dense)
    assert any(w.sparse_storage for w in weight_tensors(sparse))
    dense_out, sparse_out = ep.run_tflite(dense, x_test), ep.run_tflite(sparse, x_test)
    # Sparse int8 runs on LiteRT's reference kernels (not XNNPACK): outputs may differ by a level.
    two_levels = 2 * np.ptp(dense_out) / 255
    np.testing.assert_allclose(sparse_out, dense_out, atol=two_levels if quantize else 1e-5)


def test_sequential_functional_and_subclassed_models_convert(digits):
    (x, _), _ = digits

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.flatten = keras.layers.Flatten()
            self.dense = keras.layers.Dense(10)

        def call(self, inputs):
            return self.dense(self.flatten(inputs))

    sequential = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(10)])
    subclassed = Subclassed()
    subclassed(x[:1])
    for model, kwargs in [(sequential, {}), (digits_cnn(), {}),
                          (subclassed, {"input_shape": (8, 8, 1)})]:
        tflite = ep.export_tflite(model, **kwargs)
        np.testing.assert_allclose(ep.run_tflite(tflite, x[:5]), model.predict(x[:5], verbose=0),
                                   atol=1e-4)


def test_subclassed_model_without_input_shape_is_refused(digits):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    model = Subclassed()
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="input_shape="):
        ep.export_tflite(model)


def test_batch_size_none_keeps_a_dynamic_batch(trained_cnn, digits):
    _, (x_test, _) = digits
    fixed = ep.export_tflite(trained_cnn)
    dynamic = ep.export_tflite(trained_cnn, batch_size=None)
    assert make_interpreter(fixed).get_input_details()[0]["shape_signature"][0] == 1
    assert make_interpreter(dynamic).get_input_details()[0]["shape_signature"][0] == -1
    np.testing.assert_allclose(ep.run_tflite(dynamic, x_test), ep.run_tflite(fixed, x_test),
                               atol=1e-5)


def _representative_forms(x, y):
    def generator_function():
        for sample in x:
            yield [sample[None]]  # tfmot's form: a list holding one batch of one

    return {
        "dataset of (x, y) batches": tf.data.Dataset.from_tensor_slices((x, y)).batch(7),
        "unbatched dataset": tf.data.Dataset.from_tensor_slices(x),
        "generator function": generator_function,
        "generator object": (sample for sample in x),
        "list of batches": [x[:10], x[10:]],
    }


def test_every_representative_data_form_yields_the_same_samples(digits):
    (x, y), _ = digits
    x, y = x[:40], y[:40]
    for form, data in _representative_forms(x, y).items():
        samples = representative_samples(data, (8, 8, 1), limit=100)
        np.testing.assert_array_equal(np.concatenate(samples), x, err_msg=form)
    assert len(representative_samples(x, (8, 8, 1), limit=7)) == 7


def test_a_dataset_calibrates_like_the_array(trained_cnn, digits):
    (x, y), _ = digits
    x, y = x[:40], y[:40]
    from_array = ep.export_tflite(trained_cnn, quantize="int8", representative_data=x)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(7)
    assert ep.export_tflite(trained_cnn, quantize="int8", representative_data=dataset) == from_array


@pytest.mark.parametrize("kwargs, message", [
    ({"quantize": "int8"}, "representative_data is required"),
    ({"quantize": "int16x8"}, "representative_data is required"),
    ({"quantize": "int4"}, "quantize='int4' is not a known mode"),
    ({"quantize": "float16", "int8_io": True}, "int8_io=True needs quantize='int8'"),
    ({"quantize": "int16x8", "sparse_storage": True, "representative_data": "ok"},
     "sparse_storage=True is not supported with quantize='int16x8'"),
    ({"quantize": None, "representative_data": "ok"}, "representative_data is only used"),
    ({"quantize": "int8", "representative_data": "wrong shape"}, r"shape \(\d+, 8, 8\)"),
    ({"quantize": "int8", "representative_data": "uint8"}, "dtype uint8"),
    ({"quantize": "int8", "representative_data": "one sample"}, r"\(N, 8, 8, 1\)"),
    ({"quantize": "int8", "representative_data": "empty"}, "no samples"),
    ({"quantize": "int8", "representative_data": "not iterable"}, "is not supported"),
])
def test_bad_arguments_raise_a_clear_error_and_write_nothing(kwargs, message, trained_cnn, digits,
                                                             tmp_path):
    (x, _), _ = digits
    bad_data = {"ok": x[:10], "wrong shape": x[:10, :, :, 0], "one sample": x[0],
                "uint8": (x[:10] * 255).astype(np.uint8), "empty": x[:0], "not iterable": 3.5}
    kwargs = dict(kwargs)
    if "representative_data" in kwargs:
        kwargs["representative_data"] = bad_data[kwargs["representative_data"]]
    path = tmp_path / "m.tflite"
    path.write_bytes(b"previous model")
    with pytest.raises(ValueError, match=message):
        ep.export_tflite(trained_cnn, path, **kwargs)
    assert path.read_bytes() == b"previous model"
    assert os.listdir(tmp_path) == ["m.tflite"]


def test_converter_failure_leaves_no_file(trained_cnn, tmp_path, monkeypatch):
    real_from_saved_model = tf.lite.TFLiteConverter.from_saved_model

    def crashing_converter(saved_model_dir):
        converter = real_from_saved_model(saved_model_dir)

        def convert():
            raise RuntimeError("simulated converter crash")

        converter.convert = convert
        return converter

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", crashing_converter)
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match="TFLite conversion failed"):
        ep.export_tflite(trained_cnn, path)
    assert os.listdir(tmp_path) == []


def test_writes_the_returned_bytes_and_leaves_the_model_unchanged(trained_cnn, digits, tmp_path):
    (x, _), _ = digits
    before = [w.copy() for w in trained_cnn.get_weights()]
    path = tmp_path / "m.tflite"
    tflite = ep.export_tflite(trained_cnn, path, quantize="int8", representative_data=x[:20])
    assert path.read_bytes() == tflite
    for old, new in zip(before, trained_cnn.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_non_models_are_refused():
    with pytest.raises(ValueError, match="must be a Keras 3 model"):
        ep.export_tflite(keras.layers.Dense(2))
