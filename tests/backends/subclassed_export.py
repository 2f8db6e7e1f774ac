"""Run by tests/backends/test_subclassed_export.py as
`KERAS_BACKEND=<jax|torch> python subclassed_export.py <folder>`.

Exports a subclassed model defined here, in `__main__` (refused, with the error written to
`<folder>/main_error.txt`), then one imported from `subclassed_model` beside this script
(`<folder>/model.tflite`, with the Keras outputs on the test samples in `<folder>/keras.npy`).
"""

import os
import sys

import keras
import numpy as np
from subclassed_model import TinyClassifier  # through this script's folder on sys.path

import edgeprune as ep
from edgeprune.quantize import on_tensorflow

SHAPE = (8, 8, 1)  # a subclassed model records no input shape


@keras.saving.register_keras_serializable(package="edgeprune_tests")
class InMain(TinyClassifier):
    """The same model, but its class lives in __main__."""


def main(folder):
    (x, _), (x_test, _) = ep.load_digits()
    in_main = InMain()
    in_main(x[:1])
    try:
        ep.export_tflite(in_main, os.path.join(folder, "in_main.tflite"), input_shape=SHAPE)
    except ValueError as error:
        if on_tensorflow._running:  # refused before the TensorFlow child was started
            raise AssertionError("the child was started") from error
        with open(os.path.join(folder, "main_error.txt"), "w", encoding="utf-8") as f:
            f.write(str(error))

    model = TinyClassifier()
    model(x[:1])
    ep.export_tflite(model, os.path.join(folder, "model.tflite"), input_shape=SHAPE)
    np.save(os.path.join(folder, "keras.npy"), keras.ops.convert_to_numpy(model(x_test[:32])))


if __name__ == "__main__":
    main(sys.argv[1])
