"""Converting a model that lives on JAX or PyTorch: in a child process on the TensorFlow backend.

The TFLite converter reads TensorFlow graphs, and Keras picks its backend once per process. A
`.keras` file is backend-neutral, so the model is saved to one in a scratch folder, with the
calibration samples (already checked by the caller) beside it in an `.npz`, and a Python with
`KERAS_BACKEND=tensorflow` loads it and runs the same `export_tflite` (or `export_onnx`) on the
same weights: the same `.tflite` a TensorFlow-trained model gives. That child starts on the first
conversion and serves the next ones too (TensorFlow's import costs seconds; a run converts two
or three models), and ends with the caller. Its TensorFlow logs go to a temporary file, shown
only when it fails.

Run as `python -m edgeprune.quantize.on_tensorflow`, this module is that child: for each folder
named on a line of stdin, it reads `model.keras`, `request.json` ({"kind": "tflite" | "onnx",
"options": {...}}) and `samples.npz`, writes `result` and prints one JSON line: {"ok": true} or
{"error": "..."}.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading

import numpy as np

from edgeprune.quantize.scratch import scratch_folder

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def export_tflite(model, samples, **options):
    """`export_tflite(model, **options)`'s bytes, converted on TensorFlow in a child process.

    `samples` are `calibration_samples`' tuples (one `(1, ...)` array per input) or None.
    """
    if samples is not None:
        options["num_calibration_samples"] = len(samples)
    return _in_child("tflite", model, options, samples)


def export_onnx(model, **options):
    """The ONNX bytes of `model`, exported on TensorFlow (tf2onnx) in a child process."""
    return _in_child("onnx", model, options)


def _in_child(kind, model, options, samples=None):
    with scratch_folder("backend") as folder:
        _save(model, os.path.join(folder, "model.keras"))
        if samples is not None:
            np.savez(os.path.join(folder, "samples.npz"),
                     *[np.concatenate(column) for column in zip(*samples)])
        with open(os.path.join(folder, "request.json"), "w", encoding="utf-8") as f:
            json.dump({"kind": kind, "options": options}, f)
        with _lock:  # one request at a time per child
            answer = _converter().ask(folder, kind)
        if not answer.get("ok"):
            raise ValueError(answer["error"])
        with open(os.path.join(folder, "result"), "rb") as f:
            return f.read()


class _Converter:
    """The child Python on TensorFlow, converting one request folder at a time."""

    def __init__(self):
        self.log = tempfile.TemporaryFile()
        env = dict(os.environ, KERAS_BACKEND="tensorflow",
                   PYTHONPATH=os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgeprune.quantize.on_tensorflow"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, env=env)

    def alive(self):
        return self.process.poll() is None

    def ask(self, folder, kind):
        try:
            self.process.stdin.write(folder.encode() + b"\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = b""
        if line.startswith(b"{"):
            return json.loads(line)
        self.process.kill()
        self.process.wait()
        self.log.seek(0)
        last = self.log.read().decode(errors="replace").strip()[-2000:] or "no output"
        raise RuntimeError(f"the {kind} export on the TensorFlow backend (a child process) "
                           f"ended with exit status {self.process.returncode}:\n{last}")


_lock = threading.Lock()
_running = []


def _converter():
    """The running child, started if there is none (or the last one ended); call under _lock."""
    if not _running or not _running[0].alive():
        _running[:] = [_Converter()]
    return _running[0]


def _save(model, path):
    import keras

    try:
        model.save(path)
    except Exception as error:  # noqa: BLE001 -- Keras raises many types; the text says why
        raise ValueError(
            f"converting from the {keras.config.backend()} backend saves the model as .keras "
            f"and converts it on TensorFlow, but saving failed ({type(error).__name__}: "
            f"{str(error).strip()[:500]}); a subclassed model or custom layer needs get_config() "
            "and @keras.saving.register_keras_serializable() in an importable module, or "
            "export it from a process with KERAS_BACKEND=tensorflow.") from error


def child_main():
    """The child: converts each folder named on stdin; see the module docstring."""
    from device_bench.runner import exit_with_parent

    exit_with_parent()  # a killed caller leaves no child waiting for nobody
    # Answers go to the real stdout; anything a library prints goes to stderr (the log).
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    # Importing edgeprune's package hides TensorFlow's logs; these modules register edgeprune's
    # serializable layers before any model loads.
    from edgeprune.quantize import export, onnx_export  # noqa: F401

    for line in sys.stdin:
        answers.write(json.dumps(_convert(line.strip())) + "\n")
        answers.flush()
    return 0


def _convert(folder):
    """The answer to the request in `folder`, its result written there."""
    import keras

    with open(os.path.join(folder, "request.json"), encoding="utf-8") as f:
        request = json.load(f)
    options = request["options"]
    keras.backend.clear_session()  # the models of earlier requests
    try:
        # safe_mode=False: the file is the caller's in-memory model, saved a moment ago.
        model = keras.models.load_model(os.path.join(folder, "model.keras"), safe_mode=False)
    except Exception as error:  # noqa: BLE001 -- Keras raises many types; the text says why
        return {"error": (
            f"the model saved on another backend does not load on TensorFlow "
            f"({type(error).__name__}: {str(error).strip()[:500]}); custom layers must be "
            "registered (@keras.saving.register_keras_serializable()) in an importable module, "
            "not in __main__, or export from a process with KERAS_BACKEND=tensorflow.")}
    try:
        if request["kind"] == "tflite":
            from edgeprune.quantize.export import export_tflite

            samples = os.path.join(folder, "samples.npz")
            if os.path.exists(samples):
                with np.load(samples, allow_pickle=False) as data:
                    arrays = [data[f"arr_{i}"] for i in range(len(data.files))]
                options["representative_data"] = arrays[0] if len(arrays) == 1 else arrays
            result = export_tflite(model, **options)
        else:
            from edgeprune.quantize.onnx_export import onnx_bytes

            result = onnx_bytes(model, **options)
    except ValueError as error:
        return {"error": str(error)}
    with open(os.path.join(folder, "result"), "wb") as f:
        f.write(result)
    return {"ok": True}


if __name__ == "__main__":
    sys.exit(child_main())
