"""Checking a converted model: its outputs against the Keras model, and its size.

`validate_tflite` runs the `.tflite` itself in LiteRT, so its accuracy is the accuracy the device
will see (quantization included), not the Keras model's.

Bad files: every `.tflite` given as a path or as bytes is first read and verified by
`device_bench.flatbuffer` (the one verifier edgeprune and device_bench share: a regular file of at
most 2 GiB, the `TFL3` identifier, every table, vector and index inside the file, every weight
buffer as large as its tensor). Anything wrong raises `device_bench.errors.ModelFileError`
(also `ep.ModelFileError`) naming the file, or "the .tflite bytes", and what is wrong.

LiteRT then runs in this process only the bytes `export_tflite` produced here (see
`provenance`); any other model runs in a child process (`litert.py`), so a model that crashes
LiteRT (a valid flatbuffer can still send a kernel out of bounds) raises ModelFileError instead of
killing the caller's Python. The child costs about half a second.
"""

import dataclasses
import gzip
import json
import os
import select
import signal
import subprocess
import sys
import time

import numpy as np

from device_bench.errors import ModelFileError
from device_bench.flatbuffer import BYTES_NAME, read_model, weight_tensors
from edgeprune.processes import child_environment
from edgeprune.quantize import litert
from edgeprune.quantize.provenance import converted_here
from edgeprune.quantize.scratch import scratch_folder

# A child that prints nothing for this long (loading, or one batch) is stopped: edge models load
# and run a batch in well under a second.
PROGRESS_TIMEOUT_SECS = 120
# The child runs litert.py by path with the caller's folder off sys.path, so neither edgeprune's
# package nor a module in the working folder shadows numpy or LiteRT.
_CHILD = ("import runpy, sys; sys.path.pop(0); sys.argv = sys.argv[1:]; "
          "runpy.run_path(sys.argv[0], run_name='__main__')")


def read_tflite(tflite):
    """`(bytes, verified flatbuffer Model, name for errors)` of a `.tflite` given as bytes or as
    a path; ModelFileError names the file and what is wrong."""
    if not isinstance(tflite, (bytes, bytearray, memoryview, str, os.PathLike)):
        raise TypeError(f"expected the .tflite bytes or a path to a .tflite file, got "
                        f"{type(tflite).__name__}")
    data, model = read_model(tflite)
    name = BYTES_NAME if isinstance(tflite, (bytes, bytearray, memoryview)) else os.fspath(tflite)
    return data, model, name


def _uses_densify(model):
    return any(op.name == "DENSIFY" for sub in model.subgraphs for op in sub.operators)


def make_interpreter(tflite):
    """A LiteRT interpreter in this process for a `.tflite` (bytes or path), tensors allocated.

    The model is verified first; one that `export_tflite` did not produce in this process must
    also load in a child process before it is loaded here.
    """
    data, model, name = read_tflite(tflite)
    ensure_loads(data, model, name)
    return litert.open_interpreter(data, _uses_densify(model))


def run_tflite(tflite, x):
    """Runs a `.tflite` on the samples `x`; returns its float32 outputs.

    `x` is an array of N samples for a model with one input, or a list or tuple of such arrays,
    one per input, in the order of the Keras model's `model.inputs`. The result is an array for a
    model with one output, else a list of arrays in the order of `model.outputs` (a dict of
    outputs: its keys sorted).

    Float inputs are quantized with the input tensor's scale and zero point when the model takes
    integer inputs, and integer outputs are dequantized, so results compare with the Keras model's.
    A fixed-batch model is run batch by batch (the last batch padded). A model `export_tflite` did
    not produce in this process runs in a child process (see the module's docstring).

    >>> import keras, numpy as np
    >>> from edgeprune.quantize.export import export_tflite
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> run_tflite(export_tflite(model), np.ones((3, 4), "float32")).shape
    (3, 2)
    """
    data, model, name = read_tflite(tflite)
    several = isinstance(x, (list, tuple)) and len(model.subgraphs[0].inputs) > 1
    inputs = [np.asarray(value, np.float32) for value in (x if several else [x])]
    for value in inputs:
        if value.ndim == 0 or len(value) == 0:
            raise ValueError(f"x must hold at least one sample (an array of shape (N, ...) per "
                             f"input), got shape {value.shape}")
    densify = _uses_densify(model)
    if not converted_here(data):
        outputs = _in_child(data, name, densify, inputs)
    else:
        try:
            outputs = litert.run_batches(litert.open_interpreter(data, densify), inputs)
        except litert.InputError as error:
            raise ValueError(f"{name}: {error}") from None
    return outputs[0] if len(outputs) == 1 else outputs


def ensure_loads(data, model, name):
    """Raises ModelFileError unless LiteRT builds and allocates the verified model `data`
    (checked in a child process, unless `export_tflite` produced it here)."""
    if not converted_here(data):
        _in_child(data, name, _uses_densify(model))


def _in_child(data, name, densify, inputs=None):
    """Loads the model (and runs it on `inputs`, one array per input) in a child process; the
    outputs (a list), or None."""
    with scratch_folder("litert") as folder:
        with open(os.path.join(folder, "model.tflite"), "wb") as f:
            f.write(data)
        with open(os.path.join(folder, "request.json"), "w", encoding="utf-8") as f:
            json.dump({"densify": densify, "run": inputs is not None}, f)
        if inputs is not None:
            np.savez(os.path.join(folder, "inputs.npz"), *inputs)
        with open(os.path.join(folder, "stderr.txt"), "wb") as log:
            process = subprocess.Popen([sys.executable, "-c", _CHILD, litert.__file__, folder],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=log, env=child_environment())
        try:
            lines, hung = _lines_until_exit(process)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()
        loaded = "loaded" in lines
        doing = "running" if loaded else "loading"
        if hung:
            raise ModelFileError(f"{name}: LiteRT made no progress {doing} this model within "
                                 f"{PROGRESS_TIMEOUT_SECS} s and was stopped; the file is "
                                 "corrupted or is not a model LiteRT can run")
        if process.returncode < 0:
            how = signal.Signals(-process.returncode).name
            raise ModelFileError(f"{name}: LiteRT crashed ({how}) {doing} this model (in a child "
                                 "process, so only the child ended); the file is corrupted or "
                                 "is not a model LiteRT can run")
        answer = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
        if answer is None:
            with open(os.path.join(folder, "stderr.txt"), "rb") as f:
                last = (f.read().decode(errors="replace").strip().splitlines() or ["no output"])
            raise RuntimeError(f"the LiteRT child process for {name} ended with exit status "
                               f"{process.returncode}: {last[-1][-500:]}")
        if not answer.get("ok"):
            error = " ".join(answer["error"].split())[:800]
            if answer["phase"] == "input":
                raise ValueError(f"{name}: {error}")
            raise ModelFileError(
                f"{name}: LiteRT {'refuses' if answer['phase'] == 'load' else 'fails to run'} "
                f"this model ({error}); the file is corrupted or is not a model LiteRT can run")
        if inputs is None:
            return None
        with np.load(os.path.join(folder, "outputs.npz"), allow_pickle=False) as outputs:
            return [outputs[f"arr_{i}"] for i in range(len(outputs.files))]


def _lines_until_exit(process):
    """(the child's stdout lines, whether it went PROGRESS_TIMEOUT_SECS without a line)."""
    fd, buffer = process.stdout.fileno(), b""
    while True:
        deadline = time.monotonic() + PROGRESS_TIMEOUT_SECS
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return buffer.decode(errors="replace").splitlines(), True
            if select.select([fd], [], [], left)[0]:
                break
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return buffer.decode(errors="replace").splitlines(), False
        buffer += chunk


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

    def __str__(self):
        lines = [f"{self.num_samples} samples: top-1 agreement with Keras "
                 f"{self.top1_agreement:.2%}"]
        if self.tflite_accuracy is not None and self.keras_accuracy is not None:
            lines[0] += (f"; accuracy .tflite {self.tflite_accuracy:.2%}, Keras "
                         f"{self.keras_accuracy:.2%} "
                         f"({100 * (self.tflite_accuracy - self.keras_accuracy):+.2f} points)")
        lines.append(f"output difference from Keras: max {self.max_abs_diff:.3g}, "
                     f"mean {self.mean_abs_diff:.3g}")
        return "\n".join(lines)


def validate_tflite(tflite, model, x, labels=None):
    """Runs the `.tflite` in LiteRT and the Keras `model` on `x`; returns a `ValidationReport`.

    `x` is what `model.predict` takes: an array, or for several inputs a list in the order of
    `model.inputs` or a dict by input name. The output differences cover every output; top-1
    agreement, and the accuracies with integer class `labels`, are those of the first output.

    >>> import keras, numpy as np
    >>> from edgeprune.quantize.export import export_tflite
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> xs = np.random.rand(8, 4).astype("float32")
    >>> validate_tflite(export_tflite(model), model, xs).top1_agreement
    1.0
    """
    inputs = _inputs_in_order(model, x)
    tflite_out = run_tflite(tflite, inputs if len(inputs) > 1 else inputs[0])
    tflite_out = tflite_out if isinstance(tflite_out, list) else [tflite_out]
    keras_out = model.predict(_keras_structure(model, inputs), verbose=0)
    keras_out = [keras_out] if isinstance(keras_out, np.ndarray) else _flatten(keras_out)
    count = len(inputs[0])
    tflite_out = [np.asarray(out, np.float32).reshape(count, -1) for out in tflite_out]
    keras_out = [np.asarray(out, np.float32).reshape(count, -1) for out in keras_out]
    if [o.shape for o in tflite_out] != [o.shape for o in keras_out]:
        name = read_tflite(tflite)[2]
        raise ValueError(f"{name}: the model's outputs have {[o.shape[1] for o in tflite_out]} "
                         f"values per sample, the Keras model's {[o.shape[1] for o in keras_out]};"
                         " is it the conversion of this model?")
    diffs = np.concatenate([np.abs(t - k).ravel() for t, k in zip(tflite_out, keras_out)])
    tflite_top1, keras_top1 = tflite_out[0].argmax(axis=1), keras_out[0].argmax(axis=1)
    report = ValidationReport(count, float(diffs.max()), float(diffs.mean()),
                              float(np.mean(tflite_top1 == keras_top1)))
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        report.tflite_accuracy = float(np.mean(tflite_top1 == labels))
        report.keras_accuracy = float(np.mean(keras_top1 == labels))
    return report


# Keras is imported only for several inputs or outputs: a single-input, single-output check
# (and each forked reader of the fuzz tests) pays no Keras import.
def _keras_structure(model, inputs):
    """`inputs` in the structure of `model.input`: one array for a single-input model."""
    if len(inputs) == 1:
        return inputs[0]
    import keras

    return keras.tree.pack_sequence_as(model.input, inputs)


def _flatten(outputs):
    """A model's outputs (a list, tuple or dict) as a list, in Keras' order (dict keys sorted)."""
    import keras

    return keras.tree.flatten(outputs)


def _inputs_in_order(model, x):
    """`x` as a list of float32 arrays in the order of `model.inputs`."""
    names = [tensor.name for tensor in getattr(model, "inputs", None) or []]
    if isinstance(x, dict):
        missing = [name for name in names if name not in x]
        if missing or not names:
            raise ValueError(f"x has no input named {missing[0] if missing else list(x)!r}; the "
                             f"model's inputs are {names}")
        x = [x[name] for name in names]
    inputs = [np.asarray(value, np.float32)
              for value in (x if isinstance(x, (list, tuple)) else [x])]
    if names and len(inputs) != len(names):
        raise ValueError(f"the model has {len(names)} inputs {names}; x holds {len(inputs)} "
                         "arrays: give one per input, in that order or as a dict by name")
    return inputs


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

    The sparsity is read back from the flatbuffer, so it shows what survived conversion. Reads
    the file only (no interpreter).

    >>> import keras
    >>> from edgeprune.quantize.export import export_tflite
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> report = size_report(export_tflite(model))
    >>> report.gzip_bytes < report.raw_bytes
    True
    """
    tflite_bytes = read_tflite(tflite)[0]
    return SizeReport(len(tflite_bytes), len(gzip.compress(tflite_bytes, compresslevel=9)),
                      weight_tensors(tflite_bytes))
