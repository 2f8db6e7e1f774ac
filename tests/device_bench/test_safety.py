"""Bad model files, boards files and flags: one clear error naming the file, never a traceback, a
hang or a board verdict about a model that does not verify; and no runner outliving device-bench.

Everything runs the real readers and interpreters; anything that could block or crash runs in a
child process with a timeout.
"""

import os
import signal
import subprocess
import sys
import time

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

import device_bench
from device_bench import flatbuffer
from device_bench.errors import ModelFileError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCAL = ["--num_runs=1", "--min_secs=0", "--warmup_runs=0", "--warmup_min_secs=0"]
MICRO = ["--target=micro", "--board=nano33ble"]


def device_bench_cli(*flags, python=(sys.executable, "-m", "device_bench.cli"), timeout=120):
    return subprocess.run([*python, *flags], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def assert_names_the_problem(done, path, *phrases):
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "fits" not in done.stdout
    assert done.stderr.startswith("device-bench: error:") and str(path) in done.stderr
    for phrase in phrases:
        assert phrase in done.stderr


def repacked(path, change, out):
    """Writes to `out` the model at `path` after change(ModelT), re-serialized with LiteRT's
    generated schema code, so the file is a well-formed flatbuffer with one thing wrong."""
    with open(path, "rb") as f:
        model = schema.ModelT.InitFromPackedBuf(f.read(), 0)
    change(model)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out.write_bytes(bytes(builder.Output()))
    return str(out)


def first_kernel(model):
    """The first constant tensor of rank 2 (a FULLY_CONNECTED weight) and its buffer."""
    tensor = next(t for t in model.subgraphs[0].tensors
                  if model.buffers[t.buffer].data is not None and len(t.shape) == 2)
    return tensor, model.buffers[tensor.buffer]


# Item 2: no verdict for a model that does not verify.

def test_truncated_weights_file_not_certified_by_micro(models, tmp_path):
    def shorten(model):
        _, buffer = first_kernel(model)
        buffer.data = np.array(buffer.data[:-4])
    path = repacked(models["int8"], shorten, tmp_path / "short_weights.tflite")
    done = device_bench_cli(f"--graph={path}", *MICRO)
    assert_names_the_problem(done, path, "holds", "needs", "not a valid Flatbuffer")
    with pytest.raises(ModelFileError, match="short_weights.tflite: .*buffer .* holds"):
        flatbuffer.weight_tensors(path)


def test_negative_tensor_index_not_certified_by_micro(models, tmp_path):
    def negative(model):
        op = model.subgraphs[0].operators[0]
        op.inputs = np.array([-5, *op.inputs[1:]], np.int32)
    path = repacked(models["int8"], negative, tmp_path / "negative_index.tflite")
    assert_names_the_problem(device_bench_cli(f"--graph={path}", *MICRO), path,
                             "tensor index -5")


def test_model_litert_refuses_gets_no_micro_verdict(models, tmp_path):
    # Well-formed, weights of the right size, but the kernel's shape does not match its input:
    # only LiteRT's allocate_tensors notices; before, TFLite Micro's failure became a verdict.
    def transpose_kernel(model):
        tensor, _ = first_kernel(model)
        tensor.shape = np.array(tensor.shape[::-1], np.int32)
    path = repacked(models["int8"], transpose_kernel, tmp_path / "wrong_shape.tflite")
    flatbuffer.read_bytes(path)  # structurally fine
    done = device_bench_cli(f"--graph={path}", *MICRO)
    assert_names_the_problem(done, path, "LiteRT refuses this model", "no verdict")


def test_micro_probe_bounds_every_native_call():
    # A hang or a crash in an interpreter ends the forked child only, with a time limit.
    code = ("import ctypes, sys, time; sys.path.insert(0, 'device_bench'); "
            "import micro_probe as p; print(p.in_child(lambda: time.sleep(60), 1)[1]); "
            "print(p.in_child(lambda: ctypes.string_at(0))[1])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=30)
    assert done.stdout.splitlines() == ["did not finish within 1 s", "crashed (SIGSEGV)"]


# Item 3: errors, not tracebacks.

def test_permission_denied_file(models, tmp_path):
    path = tmp_path / "secret.tflite"
    path.write_bytes(open(models["int8"], "rb").read())
    path.chmod(0)
    python = (sys.executable, "-m", "device_bench.cli")
    if os.geteuid() == 0:  # root reads anything: drop to nobody after the imports
        python = (sys.executable, "-c", "import os, sys; from device_bench import cli; "
                  "import device_bench.targets.local, device_bench.targets.micro; "
                  "os.setegid(65534); os.seteuid(65534); sys.exit(cli.main(sys.argv[1:]))")
    for target in (LOCAL, MICRO):
        done = device_bench_cli(f"--graph={path}", *target, python=python)
        assert_names_the_problem(done, path, "cannot read it (Permission denied)")


def test_non_utf8_boards_file(models, tmp_path):
    boards = tmp_path / "boards.yaml"
    boards.write_bytes(b"boards:\n  caf\xe9:\n    flash: 1MB\n    ram: 256KB\n")
    done = device_bench_cli(f"--graph={models['int8']}", "--target=micro", "--board=cafe",
                            f"--boards_file={boards}")
    assert_names_the_problem(done, boards, "not UTF-8 text (byte 0xe9 at offset 13)")


def test_unbalanced_quote_in_remote_python(models):
    # Refused before any connection: port 1 would fail differently.
    with pytest.raises(device_bench.BenchError, match="--remote_python=.*cannot be split"):
        device_bench.benchmark(models["int8"], target="ssh://pi@127.0.0.1:1",
                               remote_python='"/opt/my python/bin/python3')
    done = device_bench_cli(f"--graph={models['int8']}", "--target=ssh://pi@127.0.0.1:1",
                            "--remote_python=python3 'unclosed")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "No closing quotation" in done.stderr


def test_non_utf8_tensor_name_is_read(models, tmp_path):
    data = open(models["int8"], "rb").read()
    assert b"MatMul" in data
    path = tmp_path / "latin1_name.tflite"
    path.write_bytes(data.replace(b"MatMul", b"MatM\xe9l"))
    assert any("MatM\N{REPLACEMENT CHARACTER}l" in w.name for w in flatbuffer.weight_tensors(path))


# Item 4: every reader checks what it reads, and bounds it.

@pytest.mark.parametrize("target", [LOCAL, MICRO], ids=["local", "micro"])
def test_fifo_is_refused_without_blocking(tmp_path, target):
    fifo = tmp_path / "model.tflite"
    os.mkfifo(fifo)
    done = device_bench_cli(f"--graph={fifo}", *target, timeout=60)
    assert_names_the_problem(done, fifo, "not a regular file (it is a FIFO")


def test_fifo_boards_file_is_refused_without_blocking(models, tmp_path):
    fifo = tmp_path / "boards.yaml"
    os.mkfifo(fifo)
    done = device_bench_cli(f"--graph={models['int8']}", "--target=micro", "--board=b",
                            f"--boards_file={fifo}", timeout=60)
    assert_names_the_problem(done, fifo, "boards file", "not a regular file")


def test_dev_zero_is_refused():
    done = device_bench_cli("--graph=/dev/zero", *LOCAL, timeout=60)
    assert_names_the_problem(done, "/dev/zero", "not a regular file (it is a character device)")
    code = ("from device_bench.flatbuffer import read_bytes\n"
            "from device_bench.errors import ModelFileError\n"
            "try:\n    read_bytes('/dev/zero')\nexcept ModelFileError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.stdout.startswith("/dev/zero: not a regular file")


def test_wrong_identifier(models, tmp_path):
    data = open(models["int8"], "rb").read()
    path = tmp_path / "renamed.tflite"
    path.write_bytes(data[:4] + b"TFL2" + data[8:])
    for read in (flatbuffer.read_bytes, flatbuffer.operator_names, flatbuffer.weight_tensors):
        with pytest.raises(ModelFileError, match="renamed.tflite: not a TFLite model \\(file "
                                                 "identifier b'TFL2', expected b'TFL3'\\)"):
            read(str(path))
    with pytest.raises(ModelFileError, match="the .tflite bytes: not a TFLite model"):
        flatbuffer.operator_names(data[:4] + b"TFL2" + data[8:])
    for target in (LOCAL, MICRO):
        assert_names_the_problem(device_bench_cli(f"--graph={path}", *target), path,
                                 "file identifier b'TFL2'")


def test_size_cap(models):
    with pytest.raises(ModelFileError, match="bytes, larger than the 100-byte limit"):
        flatbuffer.read_bytes(models["int8"], max_bytes=100)


def test_shared_vectors_cannot_make_the_reader_loop(tmp_path):
    # 2,000 tensors all pointing at one 50,000-entry shape vector: honest files never share like
    # this, and reading the shape 2,000 times is the kind of work that grows without bound.
    builder = flatbuffers.Builder(0)
    shape = builder.CreateNumpyVector(np.ones(50_000, np.int32))
    tensors = []
    for _ in range(2000):
        schema.TensorStart(builder)
        schema.TensorAddShape(builder, shape)
        tensors.append(schema.TensorEnd(builder))
    schema.SubGraphStartTensorsVector(builder, len(tensors))
    for tensor in reversed(tensors):
        builder.PrependUOffsetTRelative(tensor)
    tensor_vector = builder.EndVector()
    schema.SubGraphStart(builder)
    schema.SubGraphAddTensors(builder, tensor_vector)
    subgraph = schema.SubGraphEnd(builder)
    schema.ModelStartSubgraphsVector(builder, 1)
    builder.PrependUOffsetTRelative(subgraph)
    subgraphs = builder.EndVector()
    schema.BufferStart(builder)
    empty_buffer = schema.BufferEnd(builder)
    schema.ModelStartBuffersVector(builder, 1)
    builder.PrependUOffsetTRelative(empty_buffer)
    buffers = builder.EndVector()
    schema.ModelStart(builder)
    schema.ModelAddSubgraphs(builder, subgraphs)
    schema.ModelAddBuffers(builder, buffers)
    builder.Finish(schema.ModelEnd(builder), file_identifier=b"TFL3")
    started = time.monotonic()
    with pytest.raises(ModelFileError, match="referenced over and over"):
        flatbuffer.parse(bytes(builder.Output()), "shared.tflite")
    assert time.monotonic() - started < 5


# Item 9: the runner dies with device-bench.

def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(entry))
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the runner through /proc")
def test_runner_dies_with_its_parent(models):
    cli = subprocess.Popen([sys.executable, "-m", "device_bench.cli", f"--graph={models['float']}",
                            "--num_runs=100000000", "--min_secs=120", "--max_secs=120"],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runner = None
    try:
        deadline = time.monotonic() + 60
        while not runner and time.monotonic() < deadline:
            runner = next(iter(children(cli.pid)), None)
            time.sleep(0.1)
        assert runner, "the runner did not start"
        time.sleep(1)  # let it get into its timed runs
        cli.send_signal(signal.SIGKILL)
        cli.wait()
        deadline = time.monotonic() + 10
        while alive(runner) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(runner), "the runner outlived device-bench"
    finally:
        cli.kill()
        if runner and alive(runner):
            os.kill(runner, signal.SIGKILL)
