"""TensorFlow's C++ log lines, kept off the terminal unless asked for.

Importing TensorFlow and converting a model to `.tflite` print dozens of lines from C++ (oneDNN
and CPU-feature notices, SavedModel reader and loader lines, "Estimated count of arithmetic ops",
`fully_quantize: 0 ...`, a failed `cuInit` on a machine without a GPU) straight to file
descriptor 2, where Python's `warnings` and `logging` cannot reach them and
`TF_CPP_MIN_LOG_LEVEL=3` still lets some through. `quiet()` points descriptor 2 at a temporary
file for the duration of a block and then:

- if the block raised, writes everything captured back to stderr, so nothing that explains the
  error is lost;
- otherwise writes back every line that is not known noise: errors (`E0000 ...`, `F0000 ...`)
  other than the harmless ones listed in `HARMLESS_ERRORS`, Python warnings, and anything else
  it does not recognise.

`edgeprune` uses it around TensorFlow's import (`install_import_hook`, called by
`import edgeprune`: import edgeprune before keras or tensorflow and their import is quiet too) and
around `.tflite` conversion. `EDGEPRUNE_VERBOSE=1` in the environment, `set_verbose(True)` or the
CLI's `--verbose` turn it off: everything is printed as TensorFlow prints it.

>>> with quiet():
...     pass
"""

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
import threading

VERBOSE_ENV = "EDGEPRUNE_VERBOSE"

# glog/absl's prefix: severity, date, time, thread, file:line]
_GLOG = re.compile(r"^(?P<severity>[IWEF])\d{4} \d+:\d+:\d+\.\d+\s+\d+ \S+:\d+\] ")
# Errors TensorFlow logs on every machine without a usable GPU, or when its plugins register.
HARMLESS_ERRORS = (
    re.compile(r"failed call to cuInit"),
    re.compile(r"Unable to register cu(DNN|FFT|BLAS) factory"),
)
# Lines without the glog prefix that TensorFlow or LiteRT print on every run.
_NOISE = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(r"^To enable the following instructions: "),  # cpu_feature_guard's second line
    re.compile(r"^fully_quantize: \d+, inference_type: "),
    re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"),
    re.compile(r"^INFO: Initialized TensorFlow Lite runtime\.$"),
)

_lock = threading.RLock()
_depth = 0


def verbose():
    """Whether TensorFlow's log lines are shown (`EDGEPRUNE_VERBOSE` set to anything but 0)."""
    return os.environ.get(VERBOSE_ENV, "0").strip().lower() not in ("", "0", "false", "no")


def set_verbose(on=True):
    """Shows (True) or hides (False) TensorFlow's log lines from now on; child processes inherit
    the setting through the environment."""
    os.environ[VERBOSE_ENV] = "1" if on else "0"


def is_noise(line):
    """Whether `line` is one of TensorFlow's routine log lines (kept out of the output)."""
    line = line.rstrip("\r\n")
    match = _GLOG.match(line)
    if match:
        return match["severity"] in "IW" or any(p.search(line) for p in HARMLESS_ERRORS)
    return any(pattern.match(line) for pattern in _NOISE)


def filter_noise(text):
    """`text` without the lines `is_noise` recognises."""
    return "".join(line for line in text.splitlines(keepends=True) if not is_noise(line))


@contextlib.contextmanager
def quiet():
    """Captures file descriptor 2 (C++ and Python stderr alike) during the block; see the module
    docstring for what is written back. Nested blocks (and blocks other threads open meanwhile)
    run inside the outer capture; with `verbose()`, or when descriptor 2 cannot be duplicated,
    it does nothing."""
    global _depth
    with _lock:
        saved = None
        if not _depth and not verbose():
            _flush()
            try:
                saved = os.dup(2)
            except OSError:
                pass
        _depth += 1
    if saved is None:
        try:
            yield
        finally:
            with _lock:
                _depth -= 1
        return
    capture = tempfile.TemporaryFile(prefix="edgeprune-tf-log-")
    raised = True
    try:
        os.dup2(capture.fileno(), 2)
        yield
        raised = False
    finally:
        with _lock:
            _flush()
            os.dup2(saved, 2)
            os.close(saved)
            _depth -= 1
        capture.seek(0)
        text = capture.read().decode("utf-8", "replace")
        capture.close()
        _replay(text if raised else filter_noise(text))


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass


def _replay(text):
    if not text:
        return
    stream = sys.stderr if sys.stderr is not None else sys.__stderr__
    try:
        stream.write(text)
        stream.flush()
    except (AttributeError, OSError, ValueError):
        os.write(2, text.encode("utf-8", "replace"))


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as the other finders do, and imports it inside `quiet()`; then lists
    the GPUs, also inside it, since that is when a machine without one logs `cuInit`'s failure
    (otherwise it would appear at the first training step)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # The module keeps the real loader (for `inspect`, `pkgutil` and the like).
        module.__loader__ = module.__spec__.loader = self.loader
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietImport)]
        with quiet():
            self.loader.exec_module(module)
            try:
                module.config.list_physical_devices("GPU")
            except Exception:  # noqa: BLE001  (a broken CUDA setup must not break the import)
                pass

    def __getattr__(self, name):
        return getattr(self.loader, name)


def install_import_hook():
    """From now on, the first `import tensorflow` (also through `import keras`) runs inside
    `quiet()`. Does nothing when TensorFlow is already imported or the hook is installed."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietImport())
