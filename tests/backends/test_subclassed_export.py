"""A subclassed model exported from JAX or PyTorch goes through a TensorFlow child process: one
whose class is in an importable module (here one the caller found through its own `sys.path`)
converts, one whose class is in `__main__` is refused with a clear error before the child
starts."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeprune as ep

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("subclassed_export.py")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("subclassed")
    env = dict(os.environ, KERAS_BACKEND="torch",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, str(SCRIPT), str(folder)], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def test_a_class_in_an_importable_module_converts(exported, digits):
    _, (x_test, _) = digits
    predictions = ep.run_tflite(exported / "model.tflite", x_test[:32])
    np.testing.assert_allclose(predictions, np.load(exported / "keras.npy"), atol=1e-5)


def test_a_class_in_main_is_refused_with_what_to_do(exported):
    message = (exported / "main_error.txt").read_text()
    for words in ("'InMain' is defined in __main__", "register_keras_serializable",
                  "KERAS_BACKEND=tensorflow"):
        assert words in message
    assert not (exported / "in_main.tflite").exists()
