import os
import stat

import pytest

from device_bench.fileio import atomic_write


def test_atomic_write_replaces_whole_and_uses_normal_permissions(tmp_path):
    path = tmp_path / "sub" / "model.tflite"
    atomic_write(path, b"first")
    atomic_write(path, b"second")
    assert path.read_bytes() == b"second"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == ["model.tflite"]


def test_atomic_write_failure_leaves_the_old_file(tmp_path):
    path = tmp_path / "report.md"
    atomic_write(path, "old")
    with pytest.raises(TypeError):
        atomic_write(path, 12345)  # neither bytes nor str: the write fails midway
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]
