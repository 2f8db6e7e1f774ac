"""Deploying from JAX and PyTorch: a model trained a few steps on each backend (in a child process,
since Keras picks its backend once per process) exports `.tflite` files and an ONNX file; here,
on TensorFlow, the same weights (its `.keras` file) export the same bytes, in every quantization
mode."""

import os
import subprocess
import sys

import keras
import numpy as np
import onnxruntime
import pytest

import edgeprune as ep
from edgeprune.quantize.export import MODES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TRAIN_AND_EXPORT = """
import sys
import keras
import edgeprune as ep
from edgeprune.quantize.export import MODES
from tests.quantize.models import compile_for_digits, digits_cnn
from tests.quantize.test_multi_io import two_in_two_out

out = sys.argv[1]
(x, y), _ = ep.load_digits()
keras.utils.set_random_seed(0)
model = compile_for_digits(digits_cnn())
model.fit(x[:256], y[:256], epochs=1, batch_size=32, verbose=0)  # 8 steps on this backend
model.save(f"{out}/model.keras")
for mode in ep.QUANTIZE_MODES:  # every mode, through one TensorFlow child
    calibrated = MODES[mode].calibrated
    ep.export_tflite(model, f"{out}/{mode or 'float32'}.tflite", quantize=mode,
                     representative_data=x[:100] if calibrated else None)
print(ep.export_onnx(model, f"{out}/model.onnx", x=x[:50]))
two = two_in_two_out()  # several inputs: calibration samples cross to the child as one npz
two.save(f"{out}/two.keras")
ep.export_tflite(two, f"{out}/two.tflite", quantize="int8",
                 representative_data={"zimage": x[:50], "ameta": x[:50, 0, :3, 0]})
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_model_trained_on_another_backend_exports_the_same_files(backend, digits, tmp_path):
    env = dict(os.environ, KERAS_BACKEND=backend,
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", TRAIN_AND_EXPORT, str(tmp_path)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "onnxruntime vs Keras" in result.stdout
    (x, _), (x_test, _) = digits
    model = keras.models.load_model(tmp_path / "model.keras")  # the same weights, on TensorFlow
    for mode in ep.QUANTIZE_MODES:
        calibrated = MODES[mode].calibrated
        here = ep.export_tflite(model, quantize=mode,
                                representative_data=x[:100] if calibrated else None)
        assert (tmp_path / f"{mode or 'float32'}.tflite").read_bytes() == here, mode
    keras_out = model.predict(x_test, verbose=0)
    float_out = ep.run_tflite(tmp_path / "float32.tflite", x_test)
    np.testing.assert_allclose(float_out, keras_out, atol=1e-4)
    int8_out = ep.run_tflite(tmp_path / "int8.tflite", x_test)
    assert np.mean(int8_out.argmax(1) == keras_out.argmax(1)) >= 0.97
    two = keras.models.load_model(tmp_path / "two.keras")
    assert [tensor.name for tensor in two.inputs] == ["ameta", "zimage"]
    two_here = ep.export_tflite(two, quantize="int8",  # a list this time, in model.inputs order
                                representative_data=[x[:50, 0, :3, 0], x[:50]])
    assert (tmp_path / "two.tflite").read_bytes() == two_here
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    name = session.get_inputs()[0].name
    onnx_out = np.concatenate([session.run(None, {name: x_test[i:i + 1]})[0]
                               for i in range(0, len(x_test), 9)])
    np.testing.assert_allclose(onnx_out, keras_out[::9], atol=1e-4)
