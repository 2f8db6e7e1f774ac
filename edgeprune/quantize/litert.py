"""Running a `.tflite` in LiteRT, in this process or in a child process of its own.

A file LiteRT's checks let through can still crash it: a structurally valid flatbuffer whose
operator code names a kernel that does not fit the operator's tensors makes the kernel read out
of bounds (SIGSEGV). So `edgeprune.quantize.check` runs any model it did not convert itself in a
child process started from this file, and a crash ends the child, not the caller's Python.

This module imports only numpy and ai-edge-litert, so the child starts in well under a second.
Run as a script (`python litert.py REQUEST_FOLDER`), it is that child: it reads `model.tflite`,
`request.json` ({"densify": bool, "run": bool}) and `inputs.npy` from the folder, prints one line
per step to stdout ("loaded", then "batch" after each batch) so the parent can tell progress from
a hang, writes `outputs.npy`, and prints a last JSON line: {"ok": true} or {"phase": "load" |
"input" | "invoke", "error": "..."}.
"""

import json
import os
import sys

import numpy as np

from edgeprune.tf_logs import quiet


def open_interpreter(tflite_bytes, densify):
    """A LiteRT interpreter for the model, tensors allocated.

    Models with sparse storage (DENSIFY ops) run without LiteRT's default XNNPACK delegate, which
    cannot prepare quantized sparse weights in ai-edge-litert 2.3.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if densify
                else OpResolverType.AUTO)
    with quiet():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every load
        interpreter = Interpreter(model_content=tflite_bytes,
                                  experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    return interpreter


def run_batches(interpreter, x, on_batch=lambda: None):
    """The float32 outputs of a single-input, single-output interpreter on the samples `x`.

    Float inputs are quantized with the input tensor's scale and zero point when the model takes
    integer inputs, and integer outputs are dequantized. A fixed-batch model is run batch by batch
    (the last batch padded). Errors setting the input raise InputError.
    """
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    batch = int(input_detail["shape"][0]) if len(input_detail["shape"]) else 1
    signature = input_detail["shape_signature"]
    if not len(signature):
        signature = input_detail["shape"]
    expected = tuple(int(d) for d in signature[1:])
    if len(expected) != x.ndim - 1 or any(e not in (-1, s) for e, s in zip(expected, x.shape[1:])):
        raise InputError(f"the samples of shape {x.shape[1:]} do not fit the model's input "
                         f"{input_detail['name']!r} of shape {tuple(int(d) for d in signature)} "
                         "(-1: any size)")
    try:
        if len(signature) and signature[0] == -1:
            interpreter.resize_tensor_input(input_detail["index"], (len(x),) + x.shape[1:])
            interpreter.allocate_tensors()
            batch = len(x)
    except (RuntimeError, ValueError) as error:
        raise InputError(str(error)) from None
    if batch < 1:
        raise InputError(f"the model's batch dimension is {batch}")
    outputs = []
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
        try:
            interpreter.set_tensor(input_detail["index"], to_input_dtype(padded, input_detail))
        except (RuntimeError, ValueError) as error:
            raise InputError(f"the samples of shape {x.shape[1:]} do not fit the model's input "
                             f"{input_detail['name']!r} of shape {tuple(input_detail['shape'])}: "
                             f"{error}") from None
        interpreter.invoke()
        result = dequantize(interpreter.get_tensor(output_detail["index"]), output_detail)
        outputs.append(result[:len(chunk)])
        on_batch()
    return np.concatenate(outputs)


class InputError(ValueError):
    """The samples do not fit the model's input (the caller's data, not the model, is wrong)."""


def to_input_dtype(x, detail):
    """Float samples as an interpreter input of `detail`'s dtype, quantized if it is an integer."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    scale = scale or 1.0  # a tensor without quantization parameters holds the values as they are
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(y, detail):
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * (scale or 1.0)).astype(np.float32)


def child_main(folder):
    """The child: loads (and runs) the model in `folder`; see the module docstring."""
    from device_bench.runner import exit_with_parent

    exit_with_parent()  # a killed caller leaves no child computing for nobody

    def say(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    with open(os.path.join(folder, "request.json"), encoding="utf-8") as f:
        request = json.load(f)
    with open(os.path.join(folder, "model.tflite"), "rb") as f:
        data = f.read()
    phase = "load"
    try:
        interpreter = open_interpreter(data, request["densify"])
        say("loaded")
        if request["run"]:
            x = np.load(os.path.join(folder, "inputs.npy"), allow_pickle=False)
            phase = "invoke"
            np.save(os.path.join(folder, "outputs.npy"),
                    run_batches(interpreter, x, on_batch=lambda: say("batch")))
    except InputError as error:
        say(json.dumps({"phase": "input", "error": str(error)}))
        return 0
    except Exception as error:  # noqa: BLE001 -- LiteRT raises RuntimeError/ValueError; the text says why
        say(json.dumps({"phase": phase, "error": f"{type(error).__name__}: {error}".strip()}))
        return 0
    say(json.dumps({"ok": True}))
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
