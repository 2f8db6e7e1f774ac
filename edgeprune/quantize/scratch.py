"""Temporary folders that never outlive their use.

`scratch_folder(kind)` is a `tempfile.TemporaryDirectory` named `edgeprune-<kind>-<pid>-XXXX`,
removed when its block ends, whether it returns or raises. A process killed inside the block
(SIGKILL, SIGTERM, a timeout, `os._exit` in a forked child) runs no clean-up at all, so every new
scratch folder first removes those of the same kind whose process is gone: a killed export's
SavedModel (megabytes, for a large model) lasts until the next export at most.

>>> with scratch_folder("doc") as folder:
...     os.path.basename(folder).startswith(f"edgeprune-doc-{os.getpid()}-")
True
"""

import glob
import os
import re
import shutil
import tempfile
import time

from edgeprune.processes import is_alive

# Folders of the naming used before pids were part of it: removed once a day old.
_UNOWNED_AGE_SECS = 24 * 3600


def scratch_folder(kind):
    """A TemporaryDirectory for `kind` ("export", "litert"), after removing orphaned ones."""
    remove_orphans(kind)
    return tempfile.TemporaryDirectory(prefix=f"edgeprune-{kind}-{os.getpid()}-")


def remove_orphans(kind, root=None):
    """Removes this user's `edgeprune-<kind>-*` folders whose process is not running."""
    root = root or tempfile.gettempdir()
    owned = re.compile(rf"^edgeprune-{re.escape(kind)}-(\d+)-")
    for path in glob.glob(os.path.join(glob.escape(root), f"edgeprune-{kind}-*")):
        try:
            info = os.lstat(path)
        except OSError:
            continue
        mine = not hasattr(os, "getuid") or info.st_uid == os.getuid()
        if not mine or not os.path.isdir(path) or os.path.islink(path):
            continue
        match = owned.match(os.path.basename(path))
        if match:
            orphan = not is_alive(int(match.group(1)))
        else:
            orphan = time.time() - info.st_mtime > _UNOWNED_AGE_SECS
        if orphan:
            shutil.rmtree(path, ignore_errors=True)
