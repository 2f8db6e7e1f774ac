"""Atomic file writes shared by edgeprune and device_bench (no TensorFlow import here)."""

import os
import tempfile


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
