"""Keras 3 models to ONNX, from any backend, checked against the Keras outputs with onnxruntime.

The export is Keras' own `model.export(format="onnx")`: on TensorFlow through tf2onnx, on
PyTorch through `torch.onnx` (dynamo, which needs onnxscript). Keras exports JAX models through
jax2onnx, whose dependencies (flax, orbax, tensorstore, huggingface_hub) outweigh the rest of the
`onnx` extra, so a JAX model goes through TensorFlow in a child process instead (`on_tensorflow`,
as for `.tflite`): the same weights, the same graph as a TensorFlow model's.
"""

import dataclasses
import importlib.util
import os
import warnings

import numpy as np

from device_bench.fileio import atomic_write
from edgeprune.quantize.inputs import input_specs, serving_signature
from edgeprune.quantize.qat import is_quantize_aware, strip_quantization
from edgeprune.quantize.scratch import scratch_folder
from edgeprune.sparsity.strip import stripped
from edgeprune.tf_logs import quiet

# float32 through another graph runtime: differences of a few ulps of the outputs' scale.
DEFAULT_TOLERANCE = 1e-4
# Samples of random inputs the check runs when the caller gives none.
CHECK_SAMPLES = 8
# Packages each backend's export needs besides onnx and onnxruntime (the `onnx` extra).
_CONVERTER = {"tensorflow": "tf2onnx", "jax": "tf2onnx", "torch": "onnxscript"}
_ROUTE = {"tensorflow": "tensorflow (tf2onnx)", "torch": "torch (torch.onnx, dynamo)",
          "jax": "jax -> tensorflow in a child process (tf2onnx)"}


@dataclasses.dataclass
class OnnxExport:
    """An ONNX model and how its outputs compare with the Keras model's (onnxruntime)."""

    data: bytes = dataclasses.field(repr=False)
    path: str
    route: str
    num_samples: int
    max_abs_diff: float

    def __str__(self):
        where = f"{self.path}: " if self.path else ""
        return (f"{where}{len(self.data)} bytes of ONNX via {self.route}; onnxruntime vs Keras on "
                f"{self.num_samples} samples: max abs difference {self.max_abs_diff:.3g}")


def export_onnx(model, path=None, x=None, tolerance=DEFAULT_TOLERANCE, batch_size=1,
                input_shape=None, opset=None):
    """Exports a Keras 3 model to ONNX and checks it with onnxruntime; writes `path` if set.

    Args:
        model: a built Keras 3 model, one input or several, on any backend (see the module
            docstring). A pruned model is exported as `strip_pruning(model)`, a
            quantization-aware one as `strip_quantization(model)` (float32 ONNX).
        path: where to write the `.onnx` file, atomically, and only once the check passed.
        x: inputs to check on, as `model.predict` takes them (an array; a list in the order of
            `model.inputs` or a dict by name for several inputs); default: CHECK_SAMPLES samples
            of random normal values.
        tolerance: the largest absolute difference from the Keras outputs accepted; over it
            `ValueError`, and nothing is written.
        batch_size: the fixed batch dimension of the ONNX model; `None` keeps it dynamic.
        input_shape: the shape of one sample, for a subclassed model with one input.
        opset: the ONNX opset version; default the converter's.

    Returns:
        An `OnnxExport`: the bytes (`data`), the route, and the largest difference found.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> report = export_onnx(model)  # with a path, also writes the file
    >>> report.max_abs_diff < 1e-4 < len(report.data)
    True
    """
    import keras

    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a Keras 3 model, got {type(model).__name__}.")
    backend = keras.config.backend()
    _require(backend)
    model = stripped(model)
    if is_quantize_aware(model):
        model = strip_quantization(model)
    specs = input_specs(model, batch_size, input_shape)
    inputs = _check_inputs(model, specs, x)
    if backend == "jax":
        from edgeprune.quantize import on_tensorflow

        data = on_tensorflow.export_onnx(model, batch_size=batch_size, input_shape=input_shape,
                                         opset=opset)
    else:
        data = onnx_bytes(model, batch_size, input_shape, opset)
    difference = _max_difference(data, model, specs, inputs)
    if not difference <= tolerance:  # NaN fails too
        raise ValueError(
            f"the ONNX model's outputs differ from the Keras model's by up to {difference:.3g} "
            f"on {len(inputs[0])} samples (tolerance {tolerance}); nothing was written. Check "
            "the model's layers against the converter's supported ops, or pass a larger "
            "tolerance= if this difference is acceptable.")
    if path is not None:
        atomic_write(path, data)
    return OnnxExport(data, None if path is None else os.fspath(path),
                      _ROUTE.get(backend, backend), len(inputs[0]), difference)


def onnx_bytes(model, batch_size=1, input_shape=None, opset=None):
    """The ONNX bytes of `model` from Keras' own export on this process's backend (TensorFlow
    or PyTorch)."""
    specs = input_specs(model, batch_size, input_shape)
    # quiet(): tf2onnx and torch.onnx log tens of lines; both raise FutureWarnings of their own.
    with quiet(), warnings.catch_warnings(), scratch_folder("onnx") as folder:
        warnings.simplefilter("ignore")
        target = os.path.join(folder, "model.onnx")
        try:
            model.export(target, format="onnx", verbose=False, opset_version=opset,
                         input_signature=serving_signature(model, specs))
        except Exception as error:  # noqa: BLE001 -- the converters raise many types
            raise ValueError(f"ONNX export failed: {type(error).__name__}: "
                             f"{str(error).strip()[:2000]}") from error
        with open(target, "rb") as f:
            return f.read()


def missing_packages(backend):
    """The packages `export_onnx` needs on `backend` that are not installed."""
    needed = ("onnx", "onnxruntime", _CONVERTER.get(backend, "tf2onnx"))
    return [name for name in needed if importlib.util.find_spec(name) is None]


def _require(backend):
    missing = missing_packages(backend)
    if missing:
        raise ImportError(f"export_onnx needs {', '.join(missing)}: pip install "
                          "'edgeprune[onnx]' (onnx, onnxruntime, tf2onnx, onnxscript)")


def _check_inputs(model, specs, x):
    """The check's inputs: one float array of N samples per input, in the order of `specs`."""
    if x is None:
        rng = np.random.default_rng(0)
        return [rng.standard_normal((CHECK_SAMPLES,) + tuple(1 if d is None else d
                                                              for d in spec.shape[1:]))
                .astype(spec.dtype) for spec in specs]
    if isinstance(x, dict):
        missing = [spec.name for spec in specs if spec.name not in x]
        if missing:
            raise ValueError(f"x has no input named {missing[0]!r}; the model's inputs are "
                             f"{[spec.name for spec in specs]}")
        x = [x[spec.name] for spec in specs]
    inputs = [np.asarray(value) for value in (x if len(specs) > 1 else [x])]
    if len(inputs) != len(specs) or any(not spec.matches_sample(value.shape[1:])
                                        for value, spec in zip(inputs, specs)):
        raise ValueError(f"x must hold N samples for each input {[s.name for s in specs]} of "
                         f"shapes {[s.shape[1:] for s in specs]}, got shapes "
                         f"{[value.shape for value in inputs]}")
    return [value.astype(spec.dtype) for value, spec in zip(inputs, specs)]


def _max_difference(data, model, specs, inputs):
    """The largest absolute difference between onnxruntime's outputs and the Keras model's."""
    import keras
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [item.name for item in session.get_inputs()]
    count, batch = len(inputs[0]), specs[0].shape[0] or len(inputs[0])
    chunks = []
    for start in range(0, count, batch):
        feed = {}
        for name, value in zip(names, inputs):
            chunk = value[start:start + batch]
            feed[name] = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), 0)])
        chunks.append([out[:min(batch, count - start)] for out in session.run(None, feed)])
    onnx_out = [np.concatenate(parts) for parts in zip(*chunks)]
    structured = keras.tree.pack_sequence_as(model.input, inputs) if len(inputs) > 1 \
        else inputs[0]
    keras_out = keras.tree.flatten(model.predict(structured, verbose=0))
    return max(float(np.max(np.abs(np.asarray(o, np.float32) - np.asarray(k, np.float32))))
               for o, k in zip(onnx_out, keras_out))
