"""Runs a model in the real TFLite Micro interpreter on the host; the micro target's child process.

Run as a script (never imported by the caller's process), it reads {"graph": path} on stdin and
prints JSON: the arena bytes that print_allocations() reports, and the smallest arena the model
runs with, found by bisection.

A board verdict is only worth giving for a model that verifies, and TFLite Micro checks little:
so LiteRT must first accept the model (its flatbuffer verifier, tensor checks and
allocate_tensors), else the answer is {"rejected": why}. Every native call runs in a forked child
with a time limit (`in_child`), so a crash, abort or hang in LiteRT or TFLite Micro is reported,
not suffered, and this process always answers.

    echo '{"graph": "m.tflite"}' | python micro_probe.py
"""

import json
import os
import re
import signal
import sys
import tempfile

# Sibling file: this script runs with device_bench/ on sys.path.
from runner import exit_with_parent, random_inputs

ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
ARENA_ALIGNMENT = 16           # TFLM aligns arena allocations to 16 bytes
MIN_GENEROUS_ARENA = 64 << 20  # an arena big enough for any MCU-sized model
TRIAL_SECS = 10                # one load + invoke of an MCU-sized model takes milliseconds


def in_child(action, limit_secs=TRIAL_SECS):
    """Runs action() in a forked child killed after `limit_secs`; returns (value, error, log).

    `value` is what action() returned (JSON-able), `error` the text of what went wrong or None, and
    `log` what the child wrote to file descriptor 2, where TFLite Micro and LiteRT write their
    messages at the C level.
    """
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as log:
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_end)
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stdout carries this script's JSON
                os.dup2(log.fileno(), 2)
                signal.alarm(limit_secs)  # the default action ends the child, even inside C code
                try:
                    answer = json.dumps({"value": action()})
                except Exception as error:  # the interpreters raise RuntimeError/ValueError
                    answer = json.dumps({"error": f"{type(error).__name__}: {error}".strip()})
                os.write(write_end, answer.encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            answer = pipe.read()
        status = os.waitpid(pid, 0)[1]
        log.seek(0)
        text = log.read().decode(errors="replace")
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return None, (f"did not finish within {limit_secs} s" if number == signal.SIGALRM
                      else f"crashed ({signal.Signals(number).name})"), text
    answer = json.loads(answer) if answer else {"error": "ended without an answer"}
    return answer.get("value"), answer.get("error"), text


def capture_fd2(action):
    """What action() writes to file descriptor 2 (print_allocations prints there at the C level)."""
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            action()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        return captured.read().decode(errors="replace")


def litert_input_count(litert, data):
    """The model's input count, once LiteRT has built and allocated it (raises if it refuses)."""
    interpreter = litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return len(interpreter.get_input_details())


def load_and_invoke(runtime, np, data, arena_size, input_count):
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=arena_size)
    details = [interpreter.get_input_details(i) for i in range(input_count)]
    for index, array in enumerate(random_inputs(details, np, np.random.default_rng(0))):
        interpreter.set_input(array, index)
    interpreter.invoke()
    return interpreter


def allocations(runtime, np, data, arena_size, input_count):
    """print_allocations()' lines after one run."""
    interpreter = load_and_invoke(runtime, np, data, arena_size, input_count)
    return capture_fd2(interpreter.print_allocations).strip().splitlines()


def arena_works(runtime, np, data, arena_size, input_count):
    """True if the model loads and runs with `arena_size` bytes, tried in a forked child."""
    _, error, _ = in_child(lambda: bool(load_and_invoke(runtime, np, data, arena_size,
                                                        input_count)))
    return error is None


def smallest_arena(runtime, np, data, works_at, input_count, guess):
    """Bisection to ARENA_ALIGNMENT bytes, bracketed first by doubling from `guess` (close to the
    answer), which spares trials at sizes up to `works_at`, where the model is known to run."""
    low, high = 0, works_at
    while guess < high and not arena_works(runtime, np, data, guess, input_count):
        low, guess = guess, guess * 2
    high = min(guess, high)
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
    from ai_edge_litert import interpreter as litert
    from tflite_micro.python.tflite_micro import runtime

    with open(graph, "rb") as f:
        data = f.read()
    input_count, refused, _ = in_child(lambda: litert_input_count(litert, data))
    if refused:
        return {"ok": False, "rejected": " ".join(refused.split())}
    arena = max(10 * len(data), MIN_GENEROUS_ARENA)
    lines, error, log = in_child(lambda: allocations(runtime, np, data, arena, input_count))
    if error is not None:
        return {"ok": False, "error": error, "log": log}
    used = next(filter(None, map(ARENA_TOTAL.search, lines)), None)
    used = int(used.group(1)) if used else None
    return {"ok": True, "arena_used_bytes": used,
            "arena_min_bytes": smallest_arena(runtime, np, data, arena, input_count,
                                              guess=max(used or 0, ARENA_ALIGNMENT)),
            "allocations": lines}


def main():
    exit_with_parent()
    try:
        result = probe(json.load(sys.stdin)["graph"])
    except ImportError as error:
        result = {"ok": False, "error": f"missing package {error.name}: install it with "
                                        f"'{sys.executable} -m pip install tflite-micro "
                                        "ai-edge-litert numpy'", "log": ""}
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
