"""The same weights and schedule give bit-identical masks on TensorFlow, JAX and PyTorch, and a
`.keras` file saved mid-pruning on one backend resumes on another with the same masks.

Keras picks its backend once per process: each other backend runs `cross_backend_child.py` in its
own interpreter (this one runs it in-process), in a chain where every backend saves and resumes
(TensorFlow saves, JAX resumes TensorFlow's file and saves, PyTorch resumes JAX's and saves,
TensorFlow resumes PyTorch's), and the test compares the arrays they wrote.
"""

import itertools
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.backends import cross_backend_child

ROOT = Path(__file__).resolve().parents[2]
CHAIN = ("tensorflow", "jax", "torch", "tensorflow")  # the last link only resumes
BACKENDS = CHAIN[:-1]
SHAPES = [(3, 3, 1, 8), (8,), (288, 16), (16,), (16, 10), (10,)]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cross_backend")
    rng = np.random.default_rng(0)
    np.savez(folder / "weights.npz", *[rng.normal(0, 0.3, s).astype("float32") for s in SHAPES])
    for link, backend in enumerate(CHAIN):
        resume_from = str(folder / f"{CHAIN[link - 1]}.keras") if link else None
        resume_only = link == len(CHAIN) - 1
        if backend == keras.backend.backend():
            cross_backend_child.main(str(folder), resume_from, resume_only)
        else:
            arguments = [str(folder), *([resume_from] if resume_from else []),
                         *(["--resume-only"] if resume_only else [])]
            env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT))
            result = subprocess.run([sys.executable, cross_backend_child.__file__, *arguments],
                                    cwd=ROOT, env=env, capture_output=True, text=True,
                                    timeout=300)
            assert result.returncode == 0, f"{backend}:\n{result.stderr[-3000:]}"
    return {name: dict(np.load(folder / f"{name}.npz"))
            for backend in BACKENDS for name in (backend, f"{backend}.resumed")}


@pytest.mark.parametrize("granularity", ["unstructured", "block", "m_by_n", "global"])
def test_masks_are_bit_identical_on_every_backend(results, granularity):
    reference = {k: v for k, v in results["tensorflow"].items() if k.startswith(granularity)}
    assert any(k.endswith("/mask") and 0 < v.mean() < 1 for k, v in reference.items())
    for backend in ("jax", "torch"):
        for key, value in reference.items():
            assert results[backend][key].tobytes() == value.tobytes(), (backend, key)


@pytest.mark.parametrize("saved_on, resumed_on", list(itertools.pairwise(CHAIN)))
def test_a_keras_file_saved_mid_pruning_resumes_on_another_backend(results, saved_on,
                                                                   resumed_on):
    resumed = results[f"{resumed_on}.resumed"]
    assert int(resumed["resumed/step"]) == 20
    # Continuing the saved run from the file reaches the saver's own final masks, bit for bit.
    for key, value in results[saved_on].items():
        if key.startswith("unstructured/"):
            assert resumed["resumed/final/" + key.split("/", 1)[1]].tobytes() == value.tobytes()
    # fit with UpdatePruningStep trains the file on, two steps without a mask update.
    assert set(resumed["trained/step"]) == {22}
    for key, value in resumed.items():
        if key.startswith("trained/") and key != "trained/step":
            assert value.tobytes() == resumed["resumed/loaded/" + key.split("/", 1)[1]].tobytes()
