"""Checks that a file is a TFLite flatbuffer before any interpreter reads it.

A truncated or corrupted file can crash the native interpreter, so the header and the root table
are checked in Python first; the interpreter itself then runs in a child process (see runner.py).

>>> read_tflite("missing.tflite")
Traceback (most recent call last):
...
device_bench.errors.BenchError: missing.tflite: file not found; check the path given to --graph
"""

import os
import struct

from device_bench.errors import BenchError

FILE_IDENTIFIER = b"TFL3"
_HEADER_BYTES = 8  # uoffset of the root table, then the 4-byte file identifier


def read_tflite(path):
    """Returns the bytes of the .tflite file at `path`, or raises BenchError saying what is wrong."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BenchError(f"{path}: file not found; check the path given to --graph")
    if not os.path.isfile(path):
        raise BenchError(f"{path}: is not a regular file; --graph needs a .tflite file")
    with open(path, "rb") as f:
        data = f.read()
    check_tflite_bytes(data, path)
    return data


def check_tflite_bytes(data, name):
    """Raises BenchError unless `data` starts like a well-formed TFLite flatbuffer."""
    size = len(data)
    if size < _HEADER_BYTES + 8:
        raise BenchError(f"{name}: only {size} bytes, too short to be a .tflite model "
                         "(empty or truncated file); re-export the model")
    if data[4:8] != FILE_IDENTIFIER:
        raise BenchError(f"{name}: not a TFLite model (file identifier {data[4:8]!r}, expected "
                         f"{FILE_IDENTIFIER!r}); pass a .tflite file, not a .keras/.h5/SavedModel")
    root = struct.unpack_from("<I", data, 0)[0]
    if root % 4 or root + 4 > size:
        raise BenchError(f"{name}: corrupted flatbuffer (root table offset {root} outside the "
                         f"{size}-byte file); re-export the model")
    vtable = root - struct.unpack_from("<i", data, root)[0]
    if vtable < 0 or vtable + 4 > size:
        raise BenchError(f"{name}: corrupted flatbuffer (vtable offset {vtable} outside the "
                         f"{size}-byte file); re-export the model")
    vtable_bytes, table_bytes = struct.unpack_from("<HH", data, vtable)
    if vtable_bytes < 4 or vtable + vtable_bytes > size or root + table_bytes > size:
        raise BenchError(f"{name}: truncated or corrupted flatbuffer (root table runs past the end "
                         f"of the {size}-byte file); re-export the model")
