"""Converting a model that lives on JAX or PyTorch: in a child process on the TensorFlow backend.

The TFLite converter reads TensorFlow graphs, and Keras picks its backend once per process. A
`.keras` file is backend-neutral, so the model is saved to one in a scratch folder, with the
calibration samples (already checked by the caller) beside it in an `.npz`, and a Python with
`KERAS_BACKEND=tensorflow` loads it and runs the same `export_tflite` (or `export_onnx`) on the
same weights: the same `.tflite` a TensorFlow-trained model gives. Keras loads a custom class only
once its module has run its `register_keras_serializable`, so the child first imports the modules
the file names, with the caller's `sys.path`; a class defined in `__main__` (a script, a notebook)
cannot be imported there and is refused before the child is asked. That child starts on the first
conversion and serves the next ones too (TensorFlow's import costs seconds; a run converts two
or three models), and ends with the caller. Its TensorFlow logs go to a temporary file, shown
only when it fails.

Run as `python -m edgeprune.quantize.on_tensorflow`, this module is that child: for each folder
named on a line of stdin, it reads `model.keras`, `request.json` ({"kind": "tflite" | "onnx",
"options": {...}, "modules": [...], "sys_path": [...]}) and `samples.npz`, writes `result` and
prints one JSON line: {"ok": true} or {"error": "..."}.
"""

import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import zipfile

import numpy as np

from edgeprune.processes import child_environment
from edgeprune.quantize.scratch import scratch_folder


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
        path = os.path.join(folder, "model.keras")
        _save(model, path)
        request = {"kind": kind, "options": options, "modules": _custom_modules(path),
                   "sys_path": [os.path.abspath(entry) for entry in sys.path]}
        if samples is not None:
            np.savez(os.path.join(folder, "samples.npz"),
                     *[np.concatenate(column) for column in zip(*samples)])
        with open(os.path.join(folder, "request.json"), "w", encoding="utf-8") as f:
            json.dump(request, f)
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
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgeprune.quantize.on_tensorflow"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log,
            env=child_environment(KERAS_BACKEND="tensorflow"))

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


def _custom_modules(path):
    """The modules of the custom classes and functions in the `.keras` file at `path`, for the
    child to import (Keras imports only its own); a ValueError for one defined in `__main__`."""
    import keras

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    modules = set()
    for entry in _serialized_objects(config):
        module = entry["module"]
        if module in (None, "__main__"):  # Keras writes None for __main__
            name = entry["config"] if entry["class_name"] == "function" else entry["class_name"]
            raise ValueError(
                f"{name!r} is defined in __main__ (your script or notebook), which the "
                "TensorFlow child process that converts models from the "
                f"{keras.config.backend()} backend cannot import. Move it to a module (a .py "
                "file beside your script), decorate it with "
                "@keras.saving.register_keras_serializable(), import it from there and export "
                "again; or export from a process with KERAS_BACKEND=tensorflow.")
        if module.split(".")[0] not in ("keras", "builtins"):
            modules.add(module)
    return sorted(modules)


def _serialized_objects(config):
    """Every serialized object (a dict with "module" and "class_name") nested in `config`."""
    if isinstance(config, dict):
        if "module" in config and "class_name" in config:
            yield config
        for value in config.values():
            yield from _serialized_objects(value)
    elif isinstance(config, list):
        for value in config:
            yield from _serialized_objects(value)


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
    sys.path.extend(entry for entry in request["sys_path"] if entry not in sys.path)
    for module in request["modules"]:  # their register_keras_serializable runs on import
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001 -- any error of the user's module
            return {"error": (
                f"module {module!r}, which defines a class or function of the model, does not "
                f"import on the TensorFlow backend ({type(error).__name__}: "
                f"{str(error).strip()[:500]}); make it importable without side effects, or "
                "export from a process with KERAS_BACKEND=tensorflow.")}
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
