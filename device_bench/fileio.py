"""File reads and atomic writes shared by edgeprune and device_bench (no TensorFlow import here)."""

import os
import stat
import tempfile

from device_bench.errors import BenchError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def read_regular_file(path, max_bytes, error=BenchError, label=""):
    """The bytes of the regular file `path`; `error(f"{label}{path}: what is wrong")` otherwise.

    Anything but a regular file is refused before it is opened (a FIFO would block forever,
    /dev/zero never ends, opening a serial port can reset the board behind it), and at most
    `max_bytes` are read, so no input makes a reader hang or run out of memory.
    """
    path = os.fspath(path)
    where = f"{label}{path}"
    try:
        info = os.stat(path)
        _check_regular(info, where, max_bytes, error)
        # O_NONBLOCK: should the path be swapped for a FIFO after the check, open() still returns.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            _check_regular(os.fstat(f.fileno()), where, max_bytes, error)
            data = f.read(max_bytes + 1)
    except error:
        raise  # a check above: it already says what is wrong (and may itself be a ValueError)
    except FileNotFoundError:
        raise error(f"{where}: cannot read it (file not found)") from None
    except (OSError, ValueError) as caught:  # ValueError: a NUL byte in the path
        raise error(f"{where}: cannot read it ({getattr(caught, 'strerror', None) or caught})") \
            from None
    if len(data) > max_bytes:  # it grew while being read
        raise error(f"{where}: larger than the {max_bytes}-byte limit for this file")
    return data


def read_text_file(path, max_bytes, label=""):
    """read_regular_file's bytes decoded as UTF-8; a BenchError naming the first bad byte."""
    raw = read_regular_file(path, max_bytes, label=label)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BenchError(f"{label}{path}: not UTF-8 text (byte {raw[error.start]:#04x} at "
                         f"offset {error.start}); save it as UTF-8") from None


def _check_regular(info, where, max_bytes, error):
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "an unusual file")
        raise error(f"{where}: not a regular file (it is {kind}); pass the path of a file")
    if info.st_size > max_bytes:
        raise error(f"{where}: {info.st_size} bytes, larger than the {max_bytes}-byte limit for "
                    "this file")


def atomic_write(path, data):
    """Writes `data` (bytes or str) to `path` so that readers see the old file or the whole new one.

    The bytes go to a temporary file in the same folder, are flushed to disk, and replace `path` in
    one `os.replace`; on any error the temporary file is removed and `path` is untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    mode = "w" if isinstance(data, str) else "wb"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        # mkstemp creates 0600; an artifact gets the permissions any new file would (umask).
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
