"""Issue 14, the library side: a bad `.tflite` never crashes the caller (item 1), every reader
raises one error naming the file (items 3 and 4), and export's temporary folders never stay
behind (item 9). The seeded fuzz test of the same entry points is tests/quantize/test_fuzz.py."""

import glob
import os
import subprocess
import sys
import tempfile

import flatbuffers
import keras
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

import edgeprune as ep
from device_bench.errors import ModelFileError
from edgeprune.quantize import check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPLIT = 49  # BuiltinOperator.SPLIT: its kernel, given a FULLY_CONNECTED's tensors, reads out of bounds


class FakeKeras:
    """What validate_tflite needs of a Keras model, without TensorFlow in a child process."""

    def predict(self, x, verbose=0):
        return np.zeros((len(x), 2), np.float32)


@pytest.fixture(scope="module")
def dense_tflite(tmp_path_factory):
    """(path, bytes) of a tiny float model: 4 inputs, 2 outputs, batch 1."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = tmp_path_factory.mktemp("dense") / "dense.tflite"
    return str(path), ep.export_tflite(model, path)


def repacked(data, change):
    """`data` after change(ModelT), re-serialized: a well-formed flatbuffer with one thing wrong."""
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    change(model)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def with_operator_code(data, code):
    def change(model):
        model.operatorCodes[0].builtinCode = code
        model.operatorCodes[0].deprecatedBuiltinCode = min(code, 127)
    return repacked(data, change)


def described(data):
    """The same model with another description: valid, but not bytes export_tflite produced."""
    def change(model):
        model.description = b"copied elsewhere"
    return repacked(data, change)


def in_python(code, *args, timeout=120):
    """Runs `code` in a fresh Python (the library's check imports no TensorFlow)."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


# Item 1: the Python API never dies with the model.

def test_item1_run_and_validate_survive_a_model_that_crashes_litert(dense_tflite, tmp_path):
    path = tmp_path / "crash.tflite"
    path.write_bytes(with_operator_code(dense_tflite[1], SPLIT))
    # Before: SIGSEGV in the caller. A fresh Python, so that a regression cannot take pytest down.
    done = in_python(
        "import sys, numpy as np\n"
        "from edgeprune.quantize.check import run_tflite, validate_tflite\n"
        "from edgeprune.quantize.micro import export_micro\n"
        "from device_bench.errors import ModelFileError\n"
        "class Fake:\n"
        "    def predict(self, x, verbose=0): return np.zeros((len(x), 2), 'float32')\n"
        "for call in (lambda: run_tflite(sys.argv[1], np.ones((2, 4))),\n"
        "             lambda: run_tflite(open(sys.argv[1], 'rb').read(), np.ones((2, 4))),\n"
        "             lambda: validate_tflite(sys.argv[1], Fake(), np.ones((2, 4))),\n"
        "             lambda: export_micro(sys.argv[1], sys.argv[1] + '_c')):\n"
        "    try:\n"
        "        call()\n"
        "    except ModelFileError as error:\n"
        "        print(error)\n"
        "print('caller alive')\n", str(path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "caller alive" and len(lines) == 5, done.stdout
    for line, name in zip(lines, [str(path), "the .tflite bytes", str(path), str(path)]):
        assert line.startswith(f"{name}: LiteRT crashed (SIGSEGV) loading this model"), line
    assert not glob.glob(str(path) + "_c*")  # no firmware from it


def test_item1_converted_bytes_run_in_process_and_others_in_a_child(dense_tflite, monkeypatch):
    path, data = dense_tflite
    children = []
    real = check._in_child
    monkeypatch.setattr(check, "_in_child", lambda *a, **k: children.append(a[1]) or real(*a, **k))
    x = np.random.default_rng(0).random((5, 4), np.float32)
    expected = ep.run_tflite(data, x)          # export_tflite's own bytes: this process
    np.testing.assert_allclose(ep.run_tflite(path, x), expected)  # the same bytes from its file
    assert children == []
    ep.run_tflite(bytearray(data), x)  # equal bytes, another object: still this process
    assert children == []
    foreign = described(data)
    np.testing.assert_allclose(ep.run_tflite(foreign, x), expected, rtol=1e-6)
    assert children == ["the .tflite bytes"]


def test_item1_wrong_samples_are_a_value_error_naming_the_file(dense_tflite):
    path, data = dense_tflite
    foreign = described(data)
    for tflite, name in ((path, path), (foreign, "the .tflite bytes")):
        with pytest.raises(ValueError, match=rf"{name}: the samples of shape \(5,\) do not fit "
                                             r"the model's input .* of shape \(1, 4\)"):
            ep.run_tflite(tflite, np.ones((3, 5)))
    with pytest.raises(ValueError, match="at least one sample"):
        ep.run_tflite(path, np.ones((0, 4)))


# Items 3 and 4: one error type, naming the file and what is wrong.

def damaged_files(data, folder):
    """{path: phrase its error must contain}."""
    cases = {"truncated.tflite": (data[:len(data) // 2], "not a valid Flatbuffer"),
             "empty.tflite": (b"", "too short to be a .tflite model"),
             "identifier.tflite": (data[:4] + b"TFL2" + data[8:], "not a TFLite model"),
             "keras.tflite": (b"PK\x03\x04" + bytes(60), "not a TFLite model"),
             "root.tflite": (b"\xff\xff\xff\x7f" + data[4:], "root table offset")}
    files = {}
    for name, (content, phrase) in cases.items():
        (folder / name).write_bytes(content)
        files[str(folder / name)] = phrase
    os.mkfifo(folder / "fifo.tflite")
    files[str(folder / "fifo.tflite")] = "not a regular file (it is a FIFO"
    files[str(folder / "missing.tflite")] = "cannot read it (file not found)"
    files[str(folder)] = "not a regular file (it is a folder)"
    return files


READERS = {
    "size_report": lambda path: ep.size_report(path),
    "run_tflite": lambda path: ep.run_tflite(path, np.ones((1, 4))),
    "validate_tflite": lambda path: ep.validate_tflite(path, FakeKeras(), np.ones((1, 4))),
    "export_micro": lambda path: ep.export_micro(path, path + "_c"),
    "op_resolver_lines": lambda path: ep.op_resolver_lines(path),
}


@pytest.mark.parametrize("reader", READERS)
def test_item3_4_every_reader_raises_model_file_error_naming_the_file(reader, dense_tflite,
                                                                      tmp_path):
    for path, phrase in damaged_files(dense_tflite[1], tmp_path).items():
        with pytest.raises(ModelFileError) as info:
            READERS[reader](path)
        assert str(info.value).startswith(f"{path}: ") and phrase in str(info.value)
        assert not glob.glob(path + "_c*")
    with pytest.raises(ModelFileError, match=r"^the \.tflite bytes: only 3 bytes"):
        ep.size_report(b"TFL")
    with pytest.raises(TypeError, match="expected the .tflite bytes or a path"):
        ep.size_report(None)


def test_item3_unreadable_file_names_the_file(dense_tflite, tmp_path):
    # In a fresh Python that drops to nobody when run as root (CI): root reads every file.
    path = tmp_path / "secret.tflite"
    path.write_bytes(dense_tflite[1])
    path.chmod(0)
    done = in_python("import os, sys\n"
                     "import numpy as np\n"
                     "import edgeprune as ep\n"
                     "from device_bench.errors import ModelFileError\n"
                     "size_report, op_resolver_lines = ep.size_report, ep.op_resolver_lines\n"
                     "run_tflite, export_micro = ep.run_tflite, ep.export_micro\n"
                     "readers = [size_report, op_resolver_lines,\n"
                     "           lambda p: run_tflite(p, np.ones((1, 4))),\n"
                     "           lambda p: export_micro(p, p + '_c')]\n"
                     "if os.geteuid() == 0:  # after the imports, which nobody cannot read\n"
                     "    os.setegid(65534); os.seteuid(65534)\n"
                     "for read in readers:\n"
                     "    try:\n        read(sys.argv[1])\n"
                     "    except ModelFileError as error:\n        print(error)\n", str(path))
    assert done.stdout.splitlines() == [f"{path}: cannot read it (Permission denied)"] * 4, \
        done.stderr


def test_item4_export_micro_names_the_file_for_every_refusal(dense_tflite, tmp_path):
    path, data = dense_tflite
    unknown = tmp_path / "unknown_op.tflite"
    unknown.write_bytes(with_operator_code(data, 250))
    with pytest.raises(ModelFileError, match=rf"^{unknown}: operator code 250 is not a builtin"):
        ep.export_micro(str(unknown), str(tmp_path / "out"))
    refused = tmp_path / "refused.tflite"
    refused.write_bytes(with_operator_code(data, schema.BuiltinOperator.CONV_2D))
    with pytest.raises(ModelFileError, match=rf"^{refused}: LiteRT refuses this model"):
        ep.export_micro(str(refused), str(tmp_path / "out"))
    assert not glob.glob(str(tmp_path / "out*"))


# Item 9: no temporary folder stays behind.

def test_item9_export_leaves_no_temporary_folder_even_after_a_kill(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    ep.export_tflite(model)  # TensorFlow's autograph writes its own temp files once per process
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ep.export_tflite(model)
    with pytest.raises(ValueError):
        ep.export_tflite(model, quantize="int8", representative_data=np.ones((2, 3), "float32"))
    assert os.listdir(tmp_path) == []
    # A process killed mid-export (SIGKILL runs no clean-up) left its folder: the next export, of
    # any process, removes it; a live process's folder is left alone.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f"edgeprune-export-{dead.pid}-abcd1234"
    (orphan / "variables").mkdir(parents=True)
    live = tmp_path / f"edgeprune-export-{os.getppid()}-efgh5678"
    live.mkdir()
    ep.export_tflite(model)
    assert sorted(os.listdir(tmp_path)) == [live.name]


def test_item9_the_litert_child_leaves_no_folder(dense_tflite, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    foreign = described(dense_tflite[1])
    ep.run_tflite(foreign, np.ones((2, 4)))
    with pytest.raises(ModelFileError):
        ep.run_tflite(with_operator_code(dense_tflite[1], SPLIT), np.ones((2, 4)))
    assert os.listdir(tmp_path) == []
