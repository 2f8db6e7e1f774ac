"""Which `.tflite` bytes `export_tflite` produced in this process.

LiteRT runs those in the caller's process (they are the converter's own output: a crash on them
would be a LiteRT bug, not bad input), and every other model in a child process
(`edgeprune.quantize.check`). The bytes are recognised by their SHA-256, so a path to a file
holding exactly what was converted counts too, and a changed byte does not.

>>> mark_converted(b"TFL3 doc"); converted_here(b"TFL3 doc"), converted_here(b"TFL3 doc!")
(True, False)
"""

import collections
import hashlib
import threading

# The most recent conversions remembered: a run converts two models, a notebook a few.
LIMIT = 64

_converted = collections.OrderedDict()
_lock = threading.Lock()


def mark_converted(data):
    """Remembers `data` as bytes `export_tflite` produced here."""
    digest = hashlib.sha256(data).digest()
    with _lock:
        _converted[digest] = True
        _converted.move_to_end(digest)
        while len(_converted) > LIMIT:
            _converted.popitem(last=False)


def converted_here(data):
    """Whether `export_tflite` produced exactly `data` in this process (one of the last LIMIT)."""
    digest = hashlib.sha256(data).digest()
    with _lock:
        return digest in _converted
