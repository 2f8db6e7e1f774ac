"""Reads the exit status and output of a runner.py process, local or remote, into a result or a
clear BenchError (a crashed interpreter becomes an error, never a crash of the caller)."""

import json
import signal

from device_bench.errors import BenchError

_RUNNER_ERROR_EXIT = 3


def crash_signal(returncode):
    """The signal that killed the runner: negative codes locally, 128+N through a remote shell."""
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else None
    if number is None:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def cannot_start(python, error, package):
    """The message for a --python that cannot be started (missing, not executable)."""
    return (f"cannot start --python={python} ({error.strerror or error}); give the path of a "
            f"Python that has {package} installed")


def decode(returncode, stdout, stderr, where, graphs, missing_dependency_hint=""):
    """The runner's JSON output, or BenchError naming `where` it ran and what went wrong."""
    tail = stderr.strip()[-800:]
    if returncode in (0, _RUNNER_ERROR_EXIT):
        try:
            output = json.loads(stdout)
        except ValueError:
            raise BenchError(f"{where}: the benchmark runner printed no result; its output: "
                             f"{(stdout + stderr).strip()[-800:] or '(nothing)'}") from None
        error = output.get("error")
        if error is None:
            return output
        hint = missing_dependency_hint if error["kind"] == "missing_dependency" else ""
        raise BenchError(f"{where}: {error['message']}{hint}")
    name = crash_signal(returncode)
    if name:
        raise BenchError(f"{where}: the LiteRT interpreter crashed ({name}) while running "
                         f"{', '.join(graphs)}; the model file is probably corrupted or uses an op "
                         f"this runtime cannot execute. Last output: {tail or '(none)'}")
    raise BenchError(f"{where}: the benchmark runner failed (exit status {returncode}): "
                     f"{tail or '(no output)'}")
