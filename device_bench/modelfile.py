"""The check every target makes before an interpreter reads a model file.

A truncated or corrupted file can crash the native interpreter or, worse, load and give figures, so
the file is read and verified in Python first (flatbuffer.py); the interpreter itself then runs in
a child process (see runner.py).

>>> read_tflite("missing.tflite")
Traceback (most recent call last):
...
device_bench.errors.ModelFileError: missing.tflite: cannot read it (file not found)
"""

import os

from device_bench.flatbuffer import read_bytes


def read_tflite(path):
    """The bytes of the .tflite file at `path`, verified; ModelFileError says what is wrong."""
    return read_bytes(os.fspath(path))
