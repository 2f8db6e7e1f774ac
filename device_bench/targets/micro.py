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
from device_bench.errors import BenchError, ModelFileError
from device_bench.schema import BenchmarkResult, MicroReport, ModelResult
from device_bench.targets import runner_process

PROBE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "micro_probe.py")
PROBE_TIMEOUT_SECS = 300
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '(\w+)'")


def inspect_model(model):
    """What the verified flatbuffer says: op names (with float32 ones), dynamic inputs, sparsity."""
    op_names, float_ops, sparse = [], collections.Counter(), False
    dynamic = []
    for subgraph in model.subgraphs:
        tensors = subgraph.tensors
        for op in subgraph.operators:
            op_names.append(op.name)
            inputs = [tensors[i] for i in op.inputs if i >= 0]
            if inputs and inputs[0].dtype == "float32" and op.name not in ("QUANTIZE", "DENSIFY"):
                float_ops[op.name] += 1
        sparse |= any(t.sparse for t in tensors)
        for index in (i for i in subgraph.inputs if i >= 0):
            signature = tensors[index].shape_signature
            if any(d < 0 for d in signature[1:]):
                dynamic.append((tensors[index].name, list(signature)))
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
        data, model = flatbuffer.read_model(graph)
        facts = inspect_model(model)
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
        """micro_probe.py's answer for `graph`; ModelFileError if LiteRT refuses the model."""
        try:
            done = subprocess.run([self.python, PROBE], input=json.dumps({"graph": graph}),
                                  capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            raise BenchError(f"micro: {graph} did not finish in TFLite Micro within "
                             f"{PROBE_TIMEOUT_SECS} s") from None
        except OSError as error:
            raise BenchError(runner_process.cannot_start(self.python, error, "tflite-micro")) \
                from None
        try:
            probe = json.loads(done.stdout) if done.returncode == 0 else None
        except ValueError:
            probe = None
        if not isinstance(probe, dict):  # the probe itself failed: its last words say why
            how = runner_process.crash_signal(done.returncode) or f"exit status {done.returncode}"
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"micro: the TFLite Micro probe of {graph} failed ({how}): {last}")
        if "rejected" in probe:
            raise ModelFileError(f"{graph}: LiteRT refuses this model ({probe['rejected']}); the "
                                 "file is corrupted or not a model LiteRT can load, so no verdict "
                                 "is given")
        return probe
