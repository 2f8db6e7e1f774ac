"""The `micro` target: proves a model runs in the real TFLite Micro interpreter and fits a board.

For each model it lists the ops, explains what TFLite Micro cannot run (sparse storage, dynamic
shapes, ops without kernels), measures the tensor arena (print_allocations and the smallest arena
that works, in micro_probe.py's child process), and with a board gives a fits / does-not-fit
verdict for flash (model bytes) and RAM (arena). Latency on a real board comes from
serial_protocol.py.

>>> MicroTarget(board="nano33ble").board.ram_bytes
262144
"""

import collections
import json
import os
import re
import subprocess
import sys

from device_bench import boards, flatbuffer
from device_bench.errors import BenchError
from device_bench.modelfile import read_tflite
from device_bench.schema import BenchmarkResult, MicroReport, ModelResult
from device_bench.targets import runner_process

PROBE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "micro_probe.py")
PROBE_TIMEOUT_SECS = 300
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '(\w+)'")
_FLOAT32 = 0  # TensorType.FLOAT32 in the TFLite schema


def inspect_model(data, name):
    """What the flatbuffer says: op names (with float32 ones), dynamic inputs, sparse tensors."""
    try:
        model = flatbuffer.parse(data)
    except Exception as error:  # the flatbuffer reader fails in many ways on a damaged file
        raise BenchError(f"{name}: truncated or corrupted flatbuffer ({type(error).__name__}: "
                         f"{error}); re-export the model") from None
    op_names, float_ops, sparse = [], collections.Counter(), False
    dynamic = []
    for subgraph in model.subgraphs:
        tensors = subgraph.tensors
        for op in subgraph.operators or []:
            name = flatbuffer.operator_name(model, op)
            op_names.append(name)
            inputs = [tensors[i] for i in op.inputs if i >= 0]
            if inputs and inputs[0].type == _FLOAT32 and name not in ("QUANTIZE", "DENSIFY"):
                float_ops[name] += 1
        sparse |= any(t.sparsity is not None for t in tensors)
        for index in subgraph.inputs:
            signature = tensors[index].shapeSignature
            if signature is not None and any(d < 0 for d in list(signature)[1:]):
                dynamic.append((tensors[index].name.decode(), [int(d) for d in signature]))
    return {"ops": sorted(set(op_names)), "float_ops": dict(float_ops),
            "sparse": sparse or "DENSIFY" in op_names, "dynamic_inputs": dynamic}


def explain_failure(facts, log, error):
    """Why TFLite Micro cannot run the model, one reason per line, each with what to do."""
    reasons = []
    if facts["sparse"]:
        reasons.append("weights are stored sparse (DENSIFY op / sparsity metadata) and TFLite "
                       "Micro has no DENSIFY kernel: export with "
                       "edgeprune.export_tflite(..., sparse_storage=False) (in a recipe, "
                       "quantize.sparse_storage: false), or convert without "
                       "tf.lite.Optimize.EXPERIMENTAL_SPARSITY, so the weights are stored dense")
    for name, signature in facts["dynamic_inputs"]:
        reasons.append(f"input {name} has dynamic dimensions {signature}: TFLite Micro needs fixed "
                       "shapes; export with a fixed input shape, e.g. keras.Input(shape=(...), "
                       "batch_size=1)")
    missing = [op for op in dict.fromkeys(_MISSING_OP.findall(log)) if op != "DENSIFY"]
    if missing:
        float_note = [op for op in missing if op in facts["float_ops"]]
        reasons.append(f"op(s) {', '.join(missing)} have no TFLite Micro kernel"
                       + (f" (float32: {', '.join(float_note)}; int8 quantization may map them to "
                          "supported kernels)" if float_note else "")
                       + ": change the layers that produce them")
    if not reasons:
        reasons.append(f"TFLite Micro failed: {error}; its log: {log.strip() or '(empty)'}")
    return reasons


def float_note(facts):
    if not facts["float_ops"]:
        return []
    ops = ", ".join(f"{name} x{count}" for name, count in sorted(facts["float_ops"].items()))
    return [f"float32 ops ({ops}) run on TFLite Micro's portable reference kernels; the "
            "MCU-optimized kernels (CMSIS-NN, ESP-NN) need int8, so quantize to full-integer int8 "
            "for speed and a smaller arena"]


class MicroTarget:
    name = "micro"

    def __init__(self, board=None, boards_file=None, python=sys.executable):
        self.board = boards.find_board(board, boards_file) if board else None
        if boards_file and not board:
            raise BenchError("--boards_file given without --board: name the board to check")
        self.python = python

    def run(self, graphs, settings):
        models = [self.report(graph) for graph in graphs]
        return BenchmarkResult(target=self.name, settings=settings.to_dict(),
                               runtime={"runtime": "tflite-micro (host build)",
                                        "board": self.board.name if self.board else None},
                               models=models)

    def report(self, graph):
        data = read_tflite(graph)
        facts = inspect_model(data, graph)
        probe = self._probe(graph)
        micro = MicroReport(ops=facts["ops"], arena_used_bytes=probe.get("arena_used_bytes"),
                            arena_min_bytes=probe.get("arena_min_bytes"),
                            board=self.board.name if self.board else None)
        if not probe["ok"]:
            micro.fits = False
            micro.notes = explain_failure(facts, probe.get("log", ""), probe["error"])
            micro.verdict = "cannot run on TFLite Micro: " + " ".join(
                f"({i}) {reason}." for i, reason in enumerate(micro.notes, 1))
        else:
            micro.notes = float_note(facts)
            micro.verdict = f"runs on TFLite Micro; arena {micro.arena_min_bytes} bytes"
            if self.board:
                micro.flash, micro.ram, micro.verdict = boards.check_fit(
                    self.board, len(data), micro.arena_min_bytes)
                micro.fits = micro.flash.fits and micro.ram.fits
        return ModelResult(graph=graph, size_bytes=len(data), micro=micro)

    def _probe(self, graph):
        try:
            done = subprocess.run([self.python, PROBE], input=json.dumps({"graph": graph}),
                                  capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            raise BenchError(f"micro: {graph} did not finish in TFLite Micro within "
                             f"{PROBE_TIMEOUT_SECS} s") from None
        signal_name = runner_process.crash_signal(done.returncode)
        if signal_name:
            return {"ok": False, "error": f"TFLite Micro crashed ({signal_name})",
                    "log": done.stderr}
        if done.returncode != 0:
            raise BenchError(f"micro: the TFLite Micro probe failed: {done.stderr.strip()[-800:]}")
        return json.loads(done.stdout)
