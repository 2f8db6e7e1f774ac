"""Damaged .tflite files, and a driver that feeds them to every entry point that reads a model.

`mutations(data, seed)` yields (name, bytes) for the ways a model file gets damaged: a wrong file
identifier, truncation, flipped bytes, broken offset and length fields (including a weight buffer
made shorter than its tensor and negative indices), zeroed regions. The name says exactly what was
changed, so any failure reproduces from the model, the seed and the name.

Run as a module it is the driver (tests/device_bench/test_fuzz.py starts it): it reads
{"models": {name: path}, "seed": int, "folder": path, "entry_points": [names], "counts": {keyword
arguments of mutations}} on stdin, writes each mutated file into the folder, and runs every entry
point on it in a forked child of its own, with a time limit, so a crash or hang is caught and
reported instead of suffered. It prints
{"cases": n, "rejected_by_litert": n, "failures": [...]} as JSON. A failure is a signal, a
traceback, a hang, an exit status outside 0/1/2, an error message that does not name the file, or
a verdict (exit status 0 or 1) about a file that LiteRT itself refuses.

To cover another entry point, add an EntryPoint to ENTRY_POINTS; edgeprune's (size_report,
validate_tflite, run_tflite, export_micro, `edgeprune inspect`) are there, run by
tests/quantize/test_fuzz.py.
"""

import contextlib
import dataclasses
import importlib
import io
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import traceback

# Above device_bench's own limits (the local target's max_secs + 60 s, the micro target's 10 s per
# interpreter call), so reaching it means something is not bounded.
CASE_SECS = 120


def mutations(data, seed=0, flips=40, words=60, zeroed=20, truncations=10):
    """Yields (name, damaged bytes) for `data`, a valid .tflite; the same seed, the same files.

    Flipped bytes and changed words fall mostly outside the weights: damaged weights still make a
    valid model, which a few cases cover, while damaged structure is what readers must survive.
    """
    rng, size = random.Random(seed), len(data)
    weights = weight_bytes(data)
    structure = [pos for pos in range(8, size) if pos not in weights]

    def edit(pos, new):
        return data[:pos] + new + data[pos + len(new):]

    for identifier in (b"TFL2", b"\0\0\0\0", b"PK\x03\x04"):
        yield f"identifier={identifier!r}", edit(4, identifier)
    for end in sorted({0, 7, 8, 15, 16, 32, size // 4, size // 2, size - 16, size - 1}
                      | {rng.randrange(size) for _ in range(truncations)}):
        yield f"truncate@{end}", data[:end]
    for _ in range(flips):
        pool = structure if rng.random() < 0.8 else sorted(weights)
        changes = {pos: rng.randrange(256) for pos in rng.sample(pool, rng.choice((1, 2, 4, 8)))}
        body = bytearray(data)
        for pos, value in changes.items():
            body[pos] = value
        yield "set " + ",".join(f"{pos}={value:#04x}" for pos, value in sorted(changes.items())), \
            bytes(body)
    # Aligned 32-bit words below the file size, outside the weights, are offsets, vector lengths
    # (a weight buffer's among them), tensor indices or counts.
    fields = [pos for pos in range(0, size - 3, 4)
              if pos not in weights and int.from_bytes(data[pos:pos + 4], "little") < size]
    for pos in sorted(rng.sample(fields, min(words, len(fields)))):
        old = int.from_bytes(data[pos:pos + 4], "little")
        new = rng.choice((0, old - 4, old // 2, old + 4, old * 2 + 1, size, 0x7FFFFFFF,
                          0xFFFFFFFF, 0xFFFFFFFB)) % (1 << 32)
        yield f"word@{pos}={new:#x}", edit(pos, new.to_bytes(4, "little"))
    for _ in range(zeroed):
        start, length = rng.randrange(size), rng.choice((4, 16, 64, 256))
        yield f"zero@{start}+{length}", edit(start, bytes(min(length, size - start)))


def weight_bytes(data):
    """The positions of the constant buffers' bytes in a valid .tflite (read with LiteRT's
    generated schema code, independent of the readers under test)."""
    from ai_edge_litert import schema_py_generated as schema

    model, positions = schema.Model.GetRootAs(data, 0), set()
    for index in range(model.BuffersLength()):
        buffer = model.Buffers(index)
        if buffer.DataLength():
            start = buffer._tab.Vector(buffer._tab.Offset(4))  # Buffer.data, field 0
            positions.update(range(start, start + buffer.DataLength()))
    return positions


@dataclasses.dataclass
class EntryPoint:
    """A way a user feeds a .tflite to the project.

    `run(path)` returns an exit status (0/1: a verdict, 2: an error explained on stderr) or None
    (a library call that returned), or raises BenchError. `verdict` says whether returning normally
    is a statement about the model, which a file LiteRT refuses must never get.
    """

    run: object
    verdict: bool = True
    imports: tuple = ()  # modules the driver imports once, before forking a child per case


def _device_bench(*flags):
    def run(path):
        from device_bench import cli
        return cli.main([f"--graph={path}", *flags])
    return run


def _edgeprune(call):
    """An edgeprune library call on the file: ModelFileError (a BenchError) or a ValueError that
    names the file is the error outcome (2); returning is None."""
    def run(path):
        try:
            call(path)
        except ValueError as error:  # e.g. export_micro's refusal of sparse storage
            print(f"error: {error}")
            return 2
        return None
    return run


def _model_io(path):
    """(one input sample, output values per sample) from the model's verified flatbuffer (read
    again by the call under test): what a caller who knows the model would pass. Dynamic or
    absurd dimensions become 1, so a damaged shape cannot make the sample huge."""
    import math

    import numpy as np
    from device_bench.flatbuffer import read_model

    graph = read_model(path)[1].subgraphs[0]

    def shape(indices):
        dims = [max(d, 1) for d in graph.tensors[indices[0]].shape] if indices and \
            indices[0] >= 0 else [1, 1]
        return dims if math.prod(dims) <= 1 << 20 else [1, 1]
    return np.ones([1, *shape(graph.inputs)[1:]], np.float32), math.prod(shape(graph.outputs)[1:])


class _FakeKeras:
    """validate_tflite's Keras model, without TensorFlow: zeros of the model's output size."""

    def __init__(self, outputs):
        self.outputs = outputs

    def predict(self, x, verbose=0):
        import numpy as np
        return np.zeros((len(x), self.outputs), np.float32)


def _run_tflite(path):
    from edgeprune.quantize.check import run_tflite
    run_tflite(path, _model_io(path)[0])


def _validate_tflite(path):
    from edgeprune.quantize.check import validate_tflite
    x, outputs = _model_io(path)
    validate_tflite(path, _FakeKeras(outputs), x)


def _export_micro(path):
    from edgeprune.quantize.micro import export_micro
    written = export_micro(path, path + "_c")
    os.remove(written.header_path)
    os.remove(written.source_path)


def _size_report(path):
    from edgeprune.quantize.check import size_report
    size_report(path)


def _edgeprune_inspect(path):
    from edgeprune import cli
    status = cli.main(["inspect", path])
    return 2 if status == 1 else status  # edgeprune's error exit is 1; the check wants it named


_EDGEPRUNE = ("edgeprune.quantize.check", "edgeprune.quantize.micro", "edgeprune.cli",
              "edgeprune.recipe.tflitestats", "edgeprune.recipe.stages", "device_bench.flatbuffer")

ENTRY_POINTS = {
    "device-bench local": EntryPoint(_device_bench(
        "--num_runs=1", "--min_secs=0", "--warmup_runs=0", "--warmup_min_secs=0",
        "--max_secs=5")),
    "device-bench micro": EntryPoint(_device_bench("--target=micro", "--board=nano33ble")),
    # edgeprune's readers. size_report and inspect read the file only (no verdict on whether it
    # runs); run_tflite, validate_tflite and export_micro hand it to LiteRT (in a child process)
    # or write firmware from it: they must refuse whatever LiteRT refuses.
    "size_report": EntryPoint(_edgeprune(_size_report), verdict=False, imports=_EDGEPRUNE),
    "run_tflite": EntryPoint(_edgeprune(_run_tflite), imports=_EDGEPRUNE),
    "validate_tflite": EntryPoint(_edgeprune(_validate_tflite), imports=_EDGEPRUNE),
    "export_micro": EntryPoint(_edgeprune(_export_micro), imports=_EDGEPRUNE),
    "edgeprune inspect": EntryPoint(_edgeprune_inspect, verdict=False, imports=_EDGEPRUNE),
}


def in_child(action, limit_secs):
    """Runs action() in a forked child (its own process group) and returns (answer, problem).

    `answer` is the JSON-able value action() returned; `problem` says how the child died or hung,
    or is None. On a hang the whole group goes, with the interpreters the child started.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            os.close(read_end)
            os.write(write_end, json.dumps(action()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks, deadline, hung = [], time.monotonic() + limit_secs, False
    with os.fdopen(read_end, "rb") as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                hung = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                break
            chunk = os.read(pipe.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    status = os.waitpid(pid, 0)[1]
    if hung:
        return None, f"hang: no answer within {limit_secs} s"
    if os.WIFSIGNALED(status):
        return None, f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    if not chunks:
        return None, "ended without an answer"
    return json.loads(b"".join(chunks)), None


def litert_accepts(data):
    """Whether LiteRT builds and allocates the model, with its builtin kernels (as the micro target
    checks) or with its default XNNPACK delegate (as the local target runs), dynamic inputs resized
    as the local target and benchmark_model do: the reference for 'a valid model'. A crash or a
    hang counts as refusing it."""
    from ai_edge_litert import interpreter as litert

    def load(resolver):
        try:
            interpreter = litert.Interpreter(model_content=data,
                                             experimental_op_resolver_type=resolver)
            for detail in interpreter.get_input_details():
                if -1 in detail["shape_signature"]:
                    interpreter.resize_tensor_input(
                        detail["index"], [1 if d < 0 else d for d in detail["shape_signature"]],
                        strict=False)
            interpreter.allocate_tensors()
            return True
        except Exception:  # noqa: BLE001 -- any refusal is an answer here
            return False
    return any(in_child(lambda: load(resolver), CASE_SECS)[0] is True for resolver in (
        litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, litert.OpResolverType.AUTO))


def outcome(entry, path):
    """How an entry point ended on `path`, with what it printed: {"kind", "status", "text"}."""
    from device_bench.errors import BenchError

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            status = entry.run(path)
            kind = "returned"
        except SystemExit as caught:  # argparse
            status, kind = caught.code, "returned"
        except BenchError as caught:
            status, kind = 2, "returned"
            print(f"error: {caught}")
        except BaseException:  # noqa: BLE001 -- a traceback is what this looks for
            status, kind = None, "traceback"
            traceback.print_exc()
    return {"kind": kind, "status": status, "text": out.getvalue()}


def check(entry, path, result, accepted):
    """What is wrong with `result`, or None."""
    text = result["text"]
    if result["kind"] == "traceback" or "Traceback (most recent call last)" in text:
        return "traceback"
    if result["status"] not in (0, 1, 2, None):
        return f"exit status {result['status']}"
    if result["status"] == 2 and path not in text:
        return "the error does not name the file"
    if entry.verdict and result["status"] != 2 and not accepted:
        return "a verdict about a file LiteRT refuses"
    return None


def fuzz_in_child(models, folder, entry_points, seed, counts, timeout):
    """The report of `main` run in a fresh Python (a crash there cannot take pytest with it), and
    a message listing its failures (empty when there are none)."""
    request = {"models": models, "seed": seed, "folder": os.fspath(folder),
               "entry_points": entry_points, "counts": counts}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-m", "tests.fuzz_tflite"], input=json.dumps(request),
                          capture_output=True, text=True, cwd=root, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    failures = "\n".join(
        f"{f['model']} {f['mutation']!r} via {f['entry_point']}: {f['problem']} "
        f"(LiteRT accepts: {f['litert_accepts']})\n{f['output']}" for f in report["failures"])
    return report, failures and f"seed {seed}:\n{failures}"


def main():
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no threads in a process that forks
    request = json.load(sys.stdin)
    entries = {name: ENTRY_POINTS[name] for name in request["entry_points"]}
    import device_bench.cli  # noqa: F401 -- imported once here, not in every forked child
    for module in {m for entry in entries.values() for m in entry.imports}:
        importlib.import_module(module)
    if "edgeprune.cli" in sys.modules:
        sys.modules["edgeprune.cli"]._parser()  # imports the stage registry
    cases = rejected = 0
    failures = []
    for model, source in sorted(request["models"].items()):
        with open(source, "rb") as f:
            data = f.read()
        for index, (name, damaged) in enumerate(
                mutations(data, request["seed"], **request.get("counts", {}))):
            path = os.path.join(request["folder"], f"{model}-{index}.tflite")
            with open(path, "wb") as f:
                f.write(damaged)
            accepted = litert_accepts(damaged)
            cases, rejected = cases + 1, rejected + (not accepted)
            for entry_name, entry in entries.items():
                result, problem = in_child(lambda: outcome(entry, path), CASE_SECS)
                problem = problem or check(entry, path, result, accepted)
                if problem:
                    failures.append({"model": model, "mutation": name, "entry_point": entry_name,
                                     "problem": problem, "litert_accepts": accepted,
                                     "output": (result or {}).get("text", "")[-1500:]})
            os.remove(path)
    json.dump({"cases": cases, "rejected_by_litert": rejected, "failures": failures}, sys.stdout)


if __name__ == "__main__":
    main()
