"""Checking a converted model: its outputs against the Keras model, and its size.

`validate_tflite` runs the `.tflite` itself in LiteRT, so its accuracy is the accuracy the device
will see (quantization included), not the Keras model's.
"""

import dataclasses
import gzip

import numpy as np

from device_bench.flatbuffer import operator_names, read_bytes, weight_tensors


def make_interpreter(tflite):
    """A LiteRT interpreter for a `.tflite` (bytes or path), tensors allocated.

    Models with sparse storage (DENSIFY ops) run without LiteRT's default XNNPACK delegate, which
    cannot prepare quantized sparse weights in ai-edge-litert 2.3.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    tflite_bytes = read_bytes(tflite)
    resolver = (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                if "DENSIFY" in operator_names(tflite_bytes) else OpResolverType.AUTO)
    interpreter = Interpreter(model_content=tflite_bytes, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return interpreter


def run_tflite(tflite, x):
    """Runs a single-input, single-output `.tflite` on the samples `x`; returns float32 outputs.

    Float inputs are quantized with the input tensor's scale and zero point when the model takes
    integer inputs, and integer outputs are dequantized, so results compare with the Keras model's.
    A fixed-batch model is run batch by batch (the last batch padded).

    >>> import keras, numpy as np
    >>> from edgeprune.quantize.export import export_tflite
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> run_tflite(export_tflite(model), np.ones((3, 4), "float32")).shape
    (3, 2)
    """
    interpreter = make_interpreter(tflite)
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    x = np.asarray(x, np.float32)
    batch = int(input_detail["shape"][0])
    if input_detail["shape_signature"][0] == -1:
        interpreter.resize_tensor_input(input_detail["index"], (len(x),) + x.shape[1:])
        interpreter.allocate_tensors()
        batch = len(x)
    outputs = []
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
        interpreter.set_tensor(input_detail["index"], to_input_dtype(padded, input_detail))
        interpreter.invoke()
        result = _dequantize(interpreter.get_tensor(output_detail["index"]), output_detail)
        outputs.append(result[:len(chunk)])
    return np.concatenate(outputs)


def to_input_dtype(x, detail):
    """Float samples as an interpreter input of `detail`'s dtype, quantized if it is an integer."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(y, detail):
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


@dataclasses.dataclass
class ValidationReport:
    """How a `.tflite` model's outputs compare with its Keras model's on the same samples.

    The accuracies are set only when labels were given.
    """

    num_samples: int
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    tflite_accuracy: float = None
    keras_accuracy: float = None


def validate_tflite(tflite, model, x, labels=None):
    """Runs the `.tflite` in LiteRT and the Keras `model` on `x`; returns a `ValidationReport`.

    With integer class `labels`, the report also gives both models' top-1 accuracy.

    >>> import keras, numpy as np
    >>> from edgeprune.quantize.export import export_tflite
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> xs = np.random.rand(8, 4).astype("float32")
    >>> validate_tflite(export_tflite(model), model, xs).top1_agreement
    1.0
    """
    x = np.asarray(x, np.float32)
    tflite_out = run_tflite(tflite, x).reshape(len(x), -1)
    keras_out = np.asarray(model.predict(x, verbose=0), np.float32).reshape(len(x), -1)
    diff = np.abs(tflite_out - keras_out)
    tflite_top1, keras_top1 = tflite_out.argmax(axis=1), keras_out.argmax(axis=1)
    report = ValidationReport(len(x), float(diff.max()), float(diff.mean()),
                              float(np.mean(tflite_top1 == keras_top1)))
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        report.tflite_accuracy = float(np.mean(tflite_top1 == labels))
        report.keras_accuracy = float(np.mean(keras_top1 == labels))
    return report


@dataclasses.dataclass
class SizeReport:
    """Raw and gzip size of a `.tflite` model and the sparsity of each stored kernel."""

    raw_bytes: int
    gzip_bytes: int
    weights: list

    def __str__(self):
        lines = [f"raw {self.raw_bytes} bytes, gzip {self.gzip_bytes} bytes"]
        lines += [f"  {w.name}: {w.shape} {w.dtype} sparsity {w.sparsity:.1%}"
                  + (" (sparse storage)" if w.sparse_storage else "") for w in self.weights]
        return "\n".join(lines)


def size_report(tflite):
    """Raw bytes, gzip bytes (what a download or a zip of the file costs) and kernel sparsity.

    The sparsity is read back from the flatbuffer, so it shows what survived conversion.

    >>> import keras
    >>> from edgeprune.quantize.export import export_tflite
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> report = size_report(export_tflite(model))
    >>> report.gzip_bytes < report.raw_bytes
    True
    """
    tflite_bytes = read_bytes(tflite)
    return SizeReport(len(tflite_bytes), len(gzip.compress(tflite_bytes, compresslevel=9)),
                      weight_tensors(tflite_bytes))
