"""ONNX export on TensorFlow, checked with onnxruntime (JAX and PyTorch: test_deploy_backends)."""

import os

import numpy as np
import onnxruntime
import pytest

import edgeprune as ep
from edgeprune.quantize.onnx_export import missing_packages
from tests.quantize.test_multi_io import two_in_two_out


def test_a_trained_cnn_exports_and_matches_keras(trained_cnn, digits, tmp_path):
    (_, _), (x_test, _) = digits
    report = ep.export_onnx(trained_cnn, tmp_path / "m.onnx", x=x_test[:40])
    assert report.route == "tensorflow (tf2onnx)" and report.num_samples == 40
    assert report.max_abs_diff < 1e-4
    assert (tmp_path / "m.onnx").read_bytes() == report.data
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    assert session.get_inputs()[0].shape == [1, 8, 8, 1]  # batch fixed at 1, as for .tflite


def test_two_inputs_two_outputs_and_a_dynamic_batch(tmp_path):
    model = two_in_two_out()
    rng = np.random.default_rng(1)
    inputs = {"zimage": rng.random((12, 8, 8, 1), "float32"),
              "ameta": rng.random((12, 3), "float32")}
    report = ep.export_onnx(model, tmp_path / "two.onnx", x=inputs, batch_size=None)
    session = onnxruntime.InferenceSession(report.data)
    feed = {item.name: inputs[tensor.name]
            for item, tensor in zip(session.get_inputs(), model.inputs)}
    outputs = session.run(None, feed)  # all 12 samples at once
    for out, expected in zip(outputs, model.predict(inputs, verbose=0)):
        np.testing.assert_allclose(out, expected, atol=1e-5)


def test_a_difference_over_the_tolerance_writes_nothing(trained_cnn, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match=r"differ from the Keras model's by up to .*nothing was "
                                         r"written"):
        ep.export_onnx(trained_cnn, path, tolerance=1e-12)
    assert path.read_bytes() == b"previous" and os.listdir(tmp_path) == ["m.onnx"]


def test_bad_check_inputs_are_named(trained_cnn):
    with pytest.raises(ValueError, match=r"x must hold N samples for each input"):
        ep.export_onnx(trained_cnn, x=np.zeros((4, 8, 8), "float32"))


def test_the_extra_is_installed_for_every_backend():
    # What `pip install "edgeprune[onnx]"` gives; a missing one is named with that command.
    assert all(missing_packages(backend) == [] for backend in ("tensorflow", "jax", "torch"))
