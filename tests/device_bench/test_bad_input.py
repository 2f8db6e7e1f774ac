"""Missing, truncated and corrupted models: clear errors, never a crash of the caller."""

import os
import random
import subprocess
import sys

import pytest

import device_bench
from device_bench.targets import runner_process


def damaged(models, tmp_path, kind):
    data = open(models["float"], "rb").read()
    path = tmp_path / f"{kind}.tflite"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif kind == "corrupted":       # header intact, random bytes in the tables and buffers
        rng, body = random.Random(0), bytearray(data)
        for i in range(100, len(body)):
            if rng.random() < 0.05:
                body[i] = rng.randrange(256)
        path.write_bytes(bytes(body))
    elif kind == "not_tflite":
        path.write_bytes(b"PK\x03\x04" + b"\0" * 64)    # e.g. a .keras zip archive
    elif kind == "bad_root_offset":
        path.write_bytes((10**6).to_bytes(4, "little") + b"TFL3" + data[8:])
    return str(path)


EXPECTED = {"empty": "too short", "truncated": "not a valid Flatbuffer",
            "corrupted": "not a valid Flatbuffer", "not_tflite": "not a TFLite model",
            "bad_root_offset": "root table offset"}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_local_target_names_file_and_problem(models, tmp_path, kind):
    path = damaged(models, tmp_path, kind)
    with pytest.raises(device_bench.BenchError) as caught:
        device_bench.benchmark(path, num_runs=1, min_secs=0)
    assert path in str(caught.value) and EXPECTED[kind] in str(caught.value)


@pytest.mark.parametrize("kind", ["truncated", "corrupted", "not_tflite"])
def test_micro_target_names_file_and_problem(models, tmp_path, kind):
    path = damaged(models, tmp_path, kind)
    with pytest.raises(device_bench.BenchError, match="corrupted|not a TFLite") as caught:
        device_bench.benchmark(path, target="micro")
    assert path in str(caught.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(device_bench.BenchError, match="file not found"):
        device_bench.benchmark(str(tmp_path / "nope.tflite"))
    with pytest.raises(device_bench.BenchError, match="not a regular file"):
        device_bench.benchmark(str(tmp_path))


def test_cli_prints_one_line_error_without_traceback(models, tmp_path):
    path = damaged(models, tmp_path, "truncated")
    done = subprocess.run([sys.executable, "-m", "device_bench.cli", f"--graph={path}"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("device-bench: error:") and path in done.stderr


def test_interpreter_crash_becomes_error(models, tmp_path):
    # A runner process that dies of SIGSEGV, as the native interpreter can on a bad flatbuffer.
    crashing_python = tmp_path / "python"
    crashing_python.write_text(f"#!/bin/sh\nexec {sys.executable} -c "
                               "'import ctypes; ctypes.string_at(0)'\n")
    os.chmod(crashing_python, 0o755)
    from device_bench.settings import RunSettings
    from device_bench.targets.local import LocalTarget

    with pytest.raises(device_bench.BenchError, match="crashed \\(SIGSEGV\\)") as caught:
        LocalTarget(python=str(crashing_python)).run([models["float"]], RunSettings())
    assert models["float"] in str(caught.value)


@pytest.mark.parametrize("code, name", [(-11, "SIGSEGV"), (139, "SIGSEGV"), (134, "SIGABRT"),
                                        (1, None)])
def test_crash_signal_from_local_and_remote_exit_codes(code, name):
    assert runner_process.crash_signal(code) == name
