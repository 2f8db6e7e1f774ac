"""The tests marked `every_backend` run again on JAX and on PyTorch.

Keras picks its backend once per process, so each backend gets a child pytest with `KERAS_BACKEND`
set; this module is not marked, so a child does not start children of its own. Run one backend by
hand with `KERAS_BACKEND=jax python -m pytest -m every_backend`.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("jax", "torch")


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_suite_passes(backend):
    env = dict(os.environ, KERAS_BACKEND=backend)
    # One worker per child: the parent's xdist workers already use the machine's cores.
    command = [sys.executable, "-m", "pytest", "-q", "-m", "every_backend", "-n", "0",
               "-p", "no:cacheprovider", "tests"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"KERAS_BACKEND={backend} {' '.join(command[2:])}:\n" \
                                   f"{output[-8000:]}"
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) > 0, output[-2000:]
