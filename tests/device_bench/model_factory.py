"""Builds tiny .tflite files for the device_bench tests (TensorFlow is used here only to MAKE them)."""

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def _convert(model, quantize=None, representative=None, sparse=False):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize in ("int8", "uint8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_type = tf.int8 if quantize == "int8" else tf.uint8
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    if sparse:
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Statistics for quantized inputs")
        return converter.convert()


def _dense_model(units=16, inputs=8, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(4)])


def _representative(shape):
    rng = np.random.default_rng(0)

    def data():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1,) + shape).astype(np.float32)]
    return data


def build_models(folder):
    """Writes the test models into `folder`; returns {name: path}."""
    import keras

    paths = {}

    def save(name, data):
        path = os.path.join(folder, name + ".tflite")
        with open(path, "wb") as f:
            f.write(data)
        paths[name] = path

    save("float", _convert(_dense_model()))
    save("float_twin", _convert(_dense_model()))
    save("int8", _convert(_dense_model(), "int8", _representative((8,))))
    save("uint8", _convert(_dense_model(), "uint8", _representative((8,))))

    a, b = keras.Input((4,), name="a"), keras.Input((6,), name="b")
    joined = keras.layers.Concatenate()([keras.layers.Dense(3)(a), keras.layers.Dense(3)(b)])
    save("two_inputs", _convert(keras.Model([a, b], keras.layers.Dense(2)(joined))))

    seq = keras.Input((None, 5))
    save("dynamic", _convert(keras.Model(seq, keras.layers.Dense(3)(seq))))

    keras.utils.set_random_seed(1)
    dense = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64)])
    kernel, bias = dense.layers[0].get_weights()
    kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.9)] = 0.0  # 90% zeros: stored sparse
    dense.layers[0].set_weights([kernel, bias])
    save("sparse", _convert(dense, sparse=True))
    return paths
