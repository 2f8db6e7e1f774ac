"""TensorFlow's MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 reach the masks of
one process from the same weights (a custom loop driving PruningController, and `fit` under
`ep.multi_worker_strategy()`), and a `fit` killed after epoch 2 resumes in one process."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.distributed import tf_training
from tests.distributed.processes import ROOT, free_ports, outputs, run_workers

WORKERS = 2
KILLED_AFTER_EPOCH = 2


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """Runs the two workers until they kill themselves after epoch 2 of `fit`; their folder."""
    out = tmp_path_factory.mktemp("multiworker")
    ports = ",".join(map(str, free_ports(WORKERS)))
    codes = run_workers(ROOT / "tests/distributed/tf_training.py",
                        [(out, index, ports, KILLED_AFTER_EPOCH) for index in range(WORKERS)],
                        [{}] * WORKERS, out)
    assert codes == [-9] * WORKERS, f"exit codes {codes}:\n{outputs(out, WORKERS)}"
    return out


def load_masks(path):
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def assert_same_masks(expected, actual):
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual):
        np.testing.assert_array_equal(got, want)


def test_custom_loop_on_two_workers_reaches_the_masks_of_one_process(two_workers):
    alone = tf_training.custom_loop(tf.distribute.get_strategy())
    assert 1 - np.mean(alone[0]) == pytest.approx(0.8, abs=1e-3)
    for index in range(WORKERS):
        assert_same_masks(alone, load_masks(two_workers / f"custom{index}.npz"))


def test_fit_on_two_workers_killed_resumes_in_one_process(two_workers, tmp_path):
    # One process, uninterrupted, from the same weights: its masks after epoch 2 and at the end.
    after_two = tmp_path / "alone_after_epoch2.npz"
    alone, epochs, step = tf_training.fit(
        tf.distribute.get_strategy(), tmp_path / "backup",
        tf_training.MasksAfterEpoch(KILLED_AFTER_EPOCH, after_two, kill=False))
    assert (epochs, step) == (tf_training.EPOCHS, 80)
    for index in range(WORKERS):
        assert_same_masks(load_masks(after_two), load_masks(two_workers / f"fit{index}.npz"))

    # The first worker's backup, taken at the end of epoch 2, resumes in this single process.
    backup = two_workers / "backup"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2
    resumed, epochs, step = tf_training.fit(tf.distribute.get_strategy(), backup)
    assert (epochs, step) == (tf_training.EPOCHS - KILLED_AFTER_EPOCH, 80)
    assert 1 - np.mean(resumed[0]) == pytest.approx(0.8, abs=1e-3)
    assert_same_masks(alone, resumed)
    assert not backup.exists()  # deleted once training finished, as Keras's callback does
