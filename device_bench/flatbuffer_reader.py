"""Bounds-checked reading of a flatbuffer: tables, scalars, vectors and strings, by field index.

The generated flatbuffer code reads without bounds checks, so a cut-off or damaged file can make it
read past the end or loop. `Reader` checks every position against the file and caps the total work
at a multiple of the file size; every failure is one ModelFileError naming the file and the field.
It knows nothing of the TFLite schema: `device_bench.flatbuffer` uses it to verify `.tflite` models.

>>> import struct
>>> data = struct.pack("<HHi", 4, 4, 4)  # a vtable with no fields, then a table 4 bytes after it
>>> Reader(data, "x.tflite").table(4, "model").scalar(0, "<i", "version")  # field left out
0
>>> Reader(data, "x.tflite").table(40, "model")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
device_bench.errors.ModelFileError: x.tflite: not a valid Flatbuffer (model: offset 40 is ...
"""

import struct

import numpy as np

from device_bench.errors import ModelFileError


class Reader:
    """Bounds-checked reads from the flatbuffer; every failure is a ModelFileError naming the file.

    `budget` caps the work at a multiple of the file size: a damaged file can point many entries
    at one large vector, and reading that again and again could take practically forever.
    """

    def __init__(self, data, name):
        self.data, self.name = data, name
        self.budget = 4 * len(data) + 4096

    def fail(self, where, problem):
        raise ModelFileError(f"{self.name}: not a valid Flatbuffer ({where}: {problem}); the file "
                             "is truncated or corrupted, re-export the model")

    def spend(self, amount, where):
        self.budget -= amount
        if self.budget < 0:
            self.fail(where, "the same data is referenced over and over, more than a file of "
                             "this size can hold")

    def check(self, pos, size, where):
        """Fails unless the `size` bytes at `pos` are inside the file."""
        if not 0 <= pos <= len(self.data) - size:
            self.fail(where, f"offset {pos} is outside the {len(self.data)}-byte file")

    def unpack(self, fmt, pos, where):
        self.check(pos, struct.calcsize(fmt), where)
        return struct.unpack_from(fmt, self.data, pos)[0]

    def table(self, pos, where):
        return Table(self, pos, where)

    def vector(self, start, dtype, where):
        """The vector of scalars at `start` (length, then elements) as a read-only array."""
        count = self.unpack("<I", start, where)
        if start + 4 + count * dtype.itemsize > len(self.data):
            self.fail(where, f"its {count} entries run past the end of the {len(self.data)}-byte "
                             "file")
        self.spend(count, where)
        return np.frombuffer(self.data, dtype, count, start + 4) if count else np.zeros(0, dtype)


class Table:
    """One flatbuffer table; a field is read by its index in the schema (field ids never change).

    Checked as the flatbuffers verifier that LiteRT runs checks it: the vtable must lie in the file,
    each field is checked when read, and a short or empty vtable means fields left out.
    """

    def __init__(self, reader, pos, where):
        reader.spend(1, where)
        self.reader, self.pos, self.where = reader, pos, where
        vtable = pos - reader.unpack("<i", pos, where)
        vtable_bytes = reader.unpack("<H", vtable, where)
        if vtable_bytes % 2:
            reader.fail(where, f"malformed table layout (vtable of {vtable_bytes} bytes)")
        reader.check(vtable, vtable_bytes, where)
        # After the vtable's size and the table's size: each field's offset, 0 if left out.
        self.offsets = struct.unpack_from(f"<{vtable_bytes // 2 - 2}H", reader.data,
                                          vtable + 4) if vtable_bytes > 4 else ()

    def _field(self, index):
        """The position of a field, or None when the table leaves it out."""
        offset = self.offsets[index] if index < len(self.offsets) else 0
        return self.pos + offset if offset else None

    def scalar(self, index, fmt, field):
        """A scalar field; 0 when left out, the schema's default for every scalar read here."""
        pos = self._field(index)
        return 0 if pos is None else self.reader.unpack(fmt, pos, f"{self.where}.{field}")

    def _target(self, index, field):
        """Where an offset field points, or None when the table leaves it out."""
        pos = self._field(index)
        return None if pos is None else pos + self.reader.unpack("<I", pos, f"{self.where}.{field}")

    def table(self, index, field):
        target = self._target(index, field)
        return None if target is None else Table(self.reader, target, f"{self.where}.{field}")

    def vector(self, index, dtype, field):
        target = self._target(index, field)
        dtype = np.dtype(dtype)
        if target is None:
            return np.zeros(0, dtype)
        return self.reader.vector(target, dtype, f"{self.where}.{field}")

    def tables(self, index, field):
        where, target = f"{self.where}.{field}", self._target(index, field)
        if target is None:
            return []
        offsets = self.reader.vector(target, np.dtype("<u4"), where)
        return [Table(self.reader, target + 4 + 4 * i + int(offset), f"{where}[{i}]")
                for i, offset in enumerate(offsets)]

    def string(self, index, field):
        where, target = f"{self.where}.{field}", self._target(index, field)
        if target is None:
            return ""
        chars = self.reader.vector(target, np.dtype("u1"), where)
        if self.reader.unpack("B", target + 4 + len(chars), where):  # C strings need it
            self.reader.fail(where, "string without its terminating zero byte")
        return chars.tobytes().decode("utf-8", "replace")  # a name only labels; LiteRT allows any
