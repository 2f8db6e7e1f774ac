"""Runs a model in the real TFLite Micro interpreter on the host; the micro target's child process.

Run as a script (never imported by the caller's process: a too-small arena or a bad model can
crash TFLite Micro), it reads {"graph": path} on stdin and prints JSON: the arena bytes that
print_allocations() reports, and the smallest arena the model runs with, found by bisection with
one forked child per trial. print_allocations() and TFLM's errors go to file descriptor 2 at the C
level, so they are captured by pointing fd 2 at a temp file.

    echo '{"graph": "m.tflite"}' | python micro_probe.py
"""

import json
import os
import re
import sys
import tempfile

from runner import random_inputs  # sibling file: this script runs with device_bench/ on sys.path

ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
ARENA_ALIGNMENT = 16           # TFLM aligns arena allocations to 16 bytes
MIN_GENEROUS_ARENA = 64 << 20  # an arena big enough for any MCU-sized model


def capture_fd2(action):
    """Runs action(); returns (its value or None, the exception or None, text written to fd 2)."""
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        value = error = None
        try:
            value = action()
        except Exception as caught:  # TFLM raises RuntimeError/ValueError; the log says why
            error = caught
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        return value, error, captured.read().decode(errors="replace")


def load_and_invoke(runtime, np, data, arena_size, input_count):
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=arena_size)
    details = [interpreter.get_input_details(i) for i in range(input_count)]
    for index, array in enumerate(random_inputs(details, np, np.random.default_rng(0))):
        interpreter.set_input(array, index)
    interpreter.invoke()
    return interpreter


def arena_works(runtime, np, data, arena_size, input_count):
    """True if the model loads and runs with `arena_size` bytes, tried in a forked child."""
    pid = os.fork()
    if pid == 0:
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        try:
            load_and_invoke(runtime, np, data, arena_size, input_count)
            os._exit(0)
        except BaseException:
            os._exit(1)
    return os.waitpid(pid, 0)[1] == 0


def smallest_arena(runtime, np, data, works_at, input_count):
    """Bisection between 0 and `works_at` to ARENA_ALIGNMENT bytes."""
    low, high = 0, works_at
    while high - low > ARENA_ALIGNMENT:
        middle = (low + high) // 2 // ARENA_ALIGNMENT * ARENA_ALIGNMENT or ARENA_ALIGNMENT
        if middle in (low, high):
            break
        if arena_works(runtime, np, data, middle, input_count):
            high = middle
        else:
            low = middle
    return high


def probe(graph):
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    with open(graph, "rb") as f:
        data = f.read()
    input_count = len(runtime.convert_bytearray_to_object(data).subgraphs[0].inputs)
    arena = max(10 * len(data), MIN_GENEROUS_ARENA)
    interpreter, error, log = capture_fd2(
        lambda: load_and_invoke(runtime, np, data, arena, input_count))
    if error is not None:
        return {"ok": False, "error": f"{type(error).__name__}: {error}", "log": log}
    _, _, allocations = capture_fd2(interpreter.print_allocations)
    used = ARENA_TOTAL.search(allocations)
    return {"ok": True, "arena_used_bytes": int(used.group(1)) if used else None,
            "arena_min_bytes": smallest_arena(runtime, np, data, arena, input_count),
            "allocations": allocations.strip().splitlines()}


def main():
    try:
        result = probe(json.load(sys.stdin)["graph"])
    except ImportError as error:
        result = {"ok": False, "error": f"missing package {error.name}: install it with "
                                        f"'{sys.executable} -m pip install tflite-micro numpy'",
                  "log": ""}
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
