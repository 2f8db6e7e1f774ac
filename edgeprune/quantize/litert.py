"""Running a `.tflite` in LiteRT, in this process or in a child process of its own.

A file LiteRT's checks let through can still crash it: a structurally valid flatbuffer whose
operator code names a kernel that does not fit the operator's tensors makes the kernel read out
of bounds (SIGSEGV). So `edgeprune.quantize.check` runs any model it did not convert itself in a
child process started from this file, and a crash ends the child, not the caller's Python.

This module imports only numpy and ai-edge-litert, so the child starts in well under a second.
Run as a script (`python litert.py REQUEST_FOLDER`), it is that child: it reads `model.tflite`,
`request.json` ({"densify": bool, "run": bool}) and `inputs.npz` (one array per input, in order)
from the folder, prints one line per step to stdout ("loaded", then "batch" after each batch) so
the parent can tell progress from a hang, writes `outputs.npz` (one array per output), and prints
a last JSON line: {"ok": true} or {"phase": "load" | "input" | "invoke", "error": "..."}.

Inputs and outputs are in the Keras model's order: a `.tflite` from `export_tflite` has one
signature whose inputs are named `args_0`, `args_0_1`, ... in the order of `model.inputs` and
whose outputs are `output_0`, `output_1`, ... in the order of `model.outputs` (or the keys of a
dict of outputs, sorted, as `keras.tree.flatten` orders them). A model without a signature keeps
the order of its subgraph's tensors.
"""

import json
import os
import re
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


def ordered_details(interpreter):
    """(input details, output details) of `interpreter`, in the Keras model's order (see the
    module docstring)."""
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        return inputs, outputs
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    by_index = {detail["index"]: detail for detail in inputs + outputs}
    ordered = []
    for named, plain in ((runner.get_input_details(), inputs),
                         (runner.get_output_details(), outputs)):
        indices = [named[name]["index"] for name in sorted(named, key=_signature_position)]
        if sorted(indices) != sorted(detail["index"] for detail in plain):
            return inputs, outputs  # a signature over another subgraph: keep the tensor order
        ordered.append([by_index[index] for index in indices])
    return tuple(ordered)


def _signature_position(name):
    """Sort key of a signature name: `args_0_3` and `output_3` by their number, others by name."""
    match = re.fullmatch(r"(?:args_0|output)(?:_(\d+))?", name)
    return (0, int(match.group(1) or 0), "") if match else (1, 0, name)


def run_batches(interpreter, inputs, on_batch=lambda: None):
    """The float32 outputs (a list, one array per output) of `interpreter` on the samples
    `inputs` (a list, one array of N samples per input), both in the Keras model's order.

    Float inputs are quantized with the input tensor's scale and zero point when the model takes
    integer inputs, and integer outputs are dequantized. A fixed-batch model is run batch by batch
    (the last batch padded). Errors setting the inputs raise InputError.
    """
    input_details, output_details = ordered_details(interpreter)
    if len(inputs) != len(input_details):
        raise InputError(f"the model has {len(input_details)} inputs "
                         f"{[d['name'] for d in input_details]}, got {len(inputs)} arrays")
    counts = {len(x) for x in inputs}
    if len(counts) != 1:
        raise InputError(f"the inputs hold different numbers of samples "
                         f"({[len(x) for x in inputs]}); give every input the same N samples")
    count = counts.pop()
    batch = None
    for x, detail in zip(inputs, input_details):
        signature = detail["shape_signature"] if len(detail["shape_signature"]) else detail["shape"]
        expected = tuple(int(d) for d in signature[1:])
        if len(expected) != x.ndim - 1 or any(e not in (-1, s)
                                              for e, s in zip(expected, x.shape[1:])):
            raise InputError(f"the samples of shape {x.shape[1:]} do not fit the model's input "
                             f"{detail['name']!r} of shape {tuple(int(d) for d in signature)} "
                             "(-1: any size)")
        try:
            if len(signature) and signature[0] == -1:
                interpreter.resize_tensor_input(detail["index"], (count,) + x.shape[1:])
                batch = count
        except (RuntimeError, ValueError) as error:
            raise InputError(str(error)) from None
    try:
        if batch is not None:
            interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as error:
        raise InputError(str(error)) from None
    shape = input_details[0]["shape"]
    batch = batch or (int(shape[0]) if len(shape) else 1)
    if batch < 1:
        raise InputError(f"the model's batch dimension is {batch}")
    outputs = [[] for _ in output_details]
    for start in range(0, count, batch):
        for x, detail in zip(inputs, input_details):
            chunk = x[start:start + batch]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
            try:
                interpreter.set_tensor(detail["index"], to_input_dtype(padded, detail))
            except (RuntimeError, ValueError) as error:
                raise InputError(f"the samples of shape {x.shape[1:]} do not fit the model's "
                                 f"input {detail['name']!r} of shape {tuple(detail['shape'])}: "
                                 f"{error}") from None
        interpreter.invoke()
        taken = min(batch, count - start)
        for collected, detail in zip(outputs, output_details):
            collected.append(dequantize(interpreter.get_tensor(detail["index"]), detail)[:taken])
        on_batch()
    return [np.concatenate(collected) for collected in outputs]


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
            with np.load(os.path.join(folder, "inputs.npz"), allow_pickle=False) as data:
                inputs = [data[f"arr_{i}"] for i in range(len(data.files))]
            phase = "invoke"
            np.savez(os.path.join(folder, "outputs.npz"),
                     *run_batches(interpreter, inputs, on_batch=lambda: say("batch")))
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
