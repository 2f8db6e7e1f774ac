"""Models with several inputs and outputs: export, calibration data, running, checking, C arrays."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import edgeprune as ep
from edgeprune.quantize import provenance


def two_in_two_out():
    """An image and a vector in (names out of alphabetical order), two heads out."""
    keras.utils.set_random_seed(3)
    image = keras.Input((8, 8, 1), name="zimage")
    meta = keras.Input((3,), name="ameta")
    x = keras.layers.Conv2D(4, 3, activation="relu")(image)
    x = keras.layers.Flatten()(x)
    h = keras.layers.Concatenate()([x, keras.layers.Dense(4, activation="relu")(meta)])
    return keras.Model({"zimage": image, "ameta": meta},
                       [keras.layers.Dense(10, name="classes")(h),
                        keras.layers.Dense(2, name="box")(h)])


@pytest.fixture(scope="module")
def model():
    return two_in_two_out()


@pytest.fixture(scope="module")
def inputs(digits):
    (x, _), _ = digits
    rng = np.random.default_rng(0)
    return {"zimage": x[:60], "ameta": rng.random((60, 3)).astype("float32")}


def in_order(model, inputs):
    return [inputs[tensor.name] for tensor in model.inputs]


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_two_inputs_two_outputs_match_keras(quantize, model, inputs):
    data = inputs if quantize else None
    tflite = ep.export_tflite(model, quantize=quantize, representative_data=data)
    outputs = ep.run_tflite(tflite, in_order(model, inputs))
    expected = model.predict(inputs, verbose=0)
    assert [o.shape for o in outputs] == [(60, 10), (60, 2)]
    for out, keras_out in zip(outputs, expected):
        # int8: within a few quantization steps of the output's range
        atol = 1e-5 if quantize is None else 4 * np.ptp(keras_out) / 255
        np.testing.assert_allclose(out, keras_out, atol=atol)
    by_dict = ep.validate_tflite(tflite, model, inputs)
    by_list = ep.validate_tflite(tflite, model, in_order(model, inputs))
    assert by_dict == by_list
    assert by_dict.top1_agreement >= (1.0 if quantize is None else 0.9)


def test_int8_io_with_two_inputs(model, inputs):
    tflite = ep.export_tflite(model, quantize="int8", representative_data=inputs, int8_io=True)
    interpreter = ep.quantize.check.make_interpreter(tflite)
    assert {d["dtype"] for d in interpreter.get_input_details()} == {np.int8}
    assert {d["dtype"] for d in interpreter.get_output_details()} == {np.int8}
    report = ep.validate_tflite(tflite, model, inputs)
    assert report.top1_agreement >= 0.9


def test_every_form_of_calibration_data_gives_the_same_model(model, inputs):
    as_list = in_order(model, inputs)
    reference = ep.export_tflite(model, quantize="int8", representative_data=as_list)

    def per_sample():  # tfmot's form: a list with one array per input, one sample each
        for i in range(60):
            yield [value[i:i + 1] for value in as_list]

    labels = np.zeros(60, "int32")
    dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(16)  # (x dict, y)
    for data in (inputs, tuple(as_list), per_sample, dataset):
        assert ep.export_tflite(model, quantize="int8", representative_data=data) == reference


@pytest.mark.parametrize("bad, message", [
    (lambda inputs: {"zimage": inputs["zimage"]}, "no input named 'ameta'"),
    (lambda inputs: {**inputs, "ameta": inputs["ameta"][:10]}, "different numbers of samples"),
    (lambda inputs: {**inputs, "ameta": inputs["ameta"][:, :2]}, "input 'ameta', has shape"),
])
def test_bad_calibration_data_names_the_input(bad, message, model, inputs):
    with pytest.raises(ValueError, match=message):
        ep.export_tflite(model, quantize="int8", representative_data=bad(inputs))


def test_a_file_from_elsewhere_runs_in_a_child_in_model_order(model, inputs, tmp_path):
    path = tmp_path / "m.tflite"
    tflite = ep.export_tflite(model, path)
    here = ep.run_tflite(tflite, in_order(model, inputs))
    provenance._converted.clear()  # as if another process had converted it
    child = ep.run_tflite(path, in_order(model, inputs))
    for a, b in zip(here, child):
        np.testing.assert_array_equal(a, b)


def test_c_array_of_a_two_input_model(model, inputs, tmp_path):
    tflite = ep.export_tflite(model, quantize="int8", representative_data=inputs, int8_io=True)
    out = ep.export_micro(tflite, tmp_path / "model_data")
    assert "op_resolver.AddConcatenation();" in out.op_resolver_lines
    source = (tmp_path / "model_data.c").read_text()
    assert f"model_data_len = {len(tflite)};" in source
