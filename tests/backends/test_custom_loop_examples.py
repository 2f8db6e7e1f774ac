"""The custom-loop examples run on their backends (each in its own interpreter, whose
KERAS_BACKEND it sets), with a short schedule: 30 steps, masks at steps 10 and 20."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_custom_loop_example_prunes_to_its_target(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, f"examples/custom_loop_{backend}.py", "--steps", "30"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    sparsities = [float(s) for s in re.findall(r"sparsity ([\d.]+)%", result.stdout)]
    assert len(sparsities) == 2 and all(abs(s - 80.0) < 0.5 for s in sparsities), result.stdout
    assert float(re.search(r"accuracy ([\d.]+)", result.stdout).group(1)) > 0.2  # it learned
