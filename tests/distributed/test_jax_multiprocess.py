"""JAX, `keras.distribution.DataParallel` with `fit` and `UpdatePruningStep`: two processes
joined by `jax.distributed` on 127.0.0.1 reach the masks of one process from the same weights
(channels, unstructured, 1x4 blocks, 2:4), and their training, killed after epoch 2, resumes from
the first process's backup in one process with two CPU devices, to the masks of one process
trained without a break."""

import shutil

import numpy as np
import pytest

from tests.distributed.processes import ROOT, free_ports, outputs, run_workers

SCRIPT = ROOT / "tests/distributed/jax_training.py"
KILLED_AFTER_EPOCH = 2


def load(path):
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files) - ("step" in saved.files))]


def assert_same_masks(expected, actual):
    assert len(expected) == len(actual) > 0
    for want, got in zip(expected, actual):
        np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two processes killed after epoch 2, beside one process trained without a break (all three
    at once); then one process with two devices resuming the two's backup."""
    pair, alone, resumed = (tmp_path_factory.mktemp(name) for name in ("pair", "alone", "resumed"))
    port = free_ports(1)[0]
    logs = tmp_path_factory.mktemp("logs")
    codes = run_workers(SCRIPT, [(pair, 0, 2, port, 1, KILLED_AFTER_EPOCH),
                                 (pair, 1, 2, port, 1, KILLED_AFTER_EPOCH),
                                 (alone, 0, 1, 0, 1)], [{}] * 3, logs)
    assert codes[2] == 0 and codes[0] == -9, f"exit codes {codes}:\n{outputs(logs, 3)}"
    shutil.copytree(pair / "backup", resumed / "backup")
    codes = run_workers(SCRIPT, [(resumed, 0, 1, 0, 2)], [{}], logs)
    assert codes == [0], outputs(logs, 1)
    return pair, alone, resumed


def test_two_processes_reach_the_masks_of_one(runs):
    pair, alone, _ = runs
    for index in range(2):
        assert_same_masks(load(alone / "channels0.npz"), load(pair / f"channels{index}.npz"))
        assert_same_masks(load(alone / "after2_0.npz"), load(pair / f"after2_{index}.npz"))
    # Half the channels of each layer but the classifier's outputs: 50%, 75% where the inputs
    # were halved too.
    assert [1 - m.mean() for m in load(alone / "channels0.npz")][::2] == pytest.approx(
        [0.5, 0.75, 0.75, 0.5])
    assert [1 - m.mean() for m in load(alone / "after2_0.npz")] == pytest.approx(
        [0.722, 0.723, 0.5], abs=1e-3)


def test_killed_training_resumes_on_another_process_count(runs):
    pair, alone, resumed = runs
    assert not (pair / "final0.npz").exists()  # killed before the end
    with np.load(resumed / "final0.npz") as saved:
        assert int(saved["step"]) == 80
    final = load(alone / "final0.npz")
    assert [1 - m.mean() for m in final] == pytest.approx([0.75, 0.75, 0.5])
    assert_same_masks(final, load(resumed / "final0.npz"))
    assert not (resumed / "backup").exists()  # deleted once training finished, as in Keras
