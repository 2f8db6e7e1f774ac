import json
import subprocess
import sys

import keras
import pytest

import edgeprune as ep

POLY_CASES = [(0.0, 0.8, 0, 1000, 3, 100), (0.1, 0.9, 37, 911, 2, 7), (0.5, 0.95, 10, 20, 1, 1),
              (0.0, 0.5, 0, 1, 3, 1), (0.2, 0.7, 3, 503, 4, 13)]
CONST_CASES = [(0.5, 0, -1, 100), (0.3, 5, 50, 7), (0.0, 0, 0, 1), (0.9, 10, 10, 3)]
STEP_RANGE = (-2, 1040)

TFMOT_SCRIPT = r"""
import json, sys
import tensorflow as tf
import tensorflow_model_optimization as tfmot
poly, const, (lo, hi) = json.loads(sys.argv[1])
out = []
for args in poly:
    s = tfmot.sparsity.keras.PolynomialDecay(*args)
    out.append([[bool(p), float(v)] for p, v in (s(tf.constant(t, tf.int64)) for t in range(lo, hi))])
for args in const:
    s = tfmot.sparsity.keras.ConstantSparsity(*args)
    out.append([[bool(p), float(v)] for p, v in (s(tf.constant(t, tf.int64)) for t in range(lo, hi))])
print(json.dumps(out))
"""


def test_schedules_equal_tfmot_at_every_step():
    # tfmot switches the process to Keras 2 when imported: it runs in its own interpreter.
    pytest.importorskip("tensorflow_model_optimization")
    payload = json.dumps([POLY_CASES, CONST_CASES, STEP_RANGE])
    result = subprocess.run([sys.executable, "-c", TFMOT_SCRIPT, payload], capture_output=True,
                            text=True, check=True)
    reference = json.loads(result.stdout.strip().splitlines()[-1])
    ours = []
    for args in POLY_CASES:
        schedule = ep.PolynomialDecay(*args)
        ours.append([list(schedule(t)) for t in range(*STEP_RANGE)])
    for args in CONST_CASES:
        schedule = ep.ConstantSparsity(*args)
        ours.append([list(schedule(t)) for t in range(*STEP_RANGE)])
    assert ours == reference


def test_polynomial_decay_formula_and_frequency():
    schedule = ep.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000, power=3, frequency=100)
    assert schedule(0) == (True, 0.0)
    assert schedule(50)[0] is False
    assert schedule(500)[1] == pytest.approx(0.8 - 0.8 * 0.5 ** 3, abs=1e-6)
    assert schedule(1000) == (True, pytest.approx(0.8))
    assert schedule(1100)[0] is False  # past end_step


def test_constant_sparsity_forever():
    schedule = ep.ConstantSparsity(0.5, begin_step=10, frequency=10)
    assert [schedule.should_prune(t) for t in (9, 10, 15, 20, 10**6)] == [
        False, True, False, True, True]


@pytest.mark.parametrize("kwargs, name", [
    (dict(initial_sparsity=0.0, final_sparsity=1.0, begin_step=0, end_step=10), "final_sparsity"),
    (dict(initial_sparsity=-0.1, final_sparsity=0.5, begin_step=0, end_step=10),
     "initial_sparsity"),
    (dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=10, end_step=5), "end_step"),
    (dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=0, end_step=-1), "end_step"),
    (dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=0, end_step=10, frequency=0),
     "frequency"),
    (dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=-1, end_step=10), "begin_step"),
])
def test_polynomial_decay_rejects_bad_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ep.PolynomialDecay(**kwargs)


def test_constant_sparsity_rejects_bad_parameters():
    with pytest.raises(ValueError, match="target_sparsity"):
        ep.ConstantSparsity(1.5, 0)
    with pytest.raises(ValueError, match="end_step"):
        ep.ConstantSparsity(0.5, begin_step=10, end_step=3)


def test_schedules_serialize():
    for schedule in (ep.PolynomialDecay(0.1, 0.9, 5, 500, power=2, frequency=7),
                     ep.ConstantSparsity(0.5, 3, 40, 2)):
        restored = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(schedule))
        assert restored == schedule
        assert [restored(t) for t in range(0, 60, 3)] == [schedule(t) for t in range(0, 60, 3)]


def test_custom_schedule_subclass():
    class EveryTen(ep.PruningSchedule):
        def __call__(self, step):
            return step % 10 == 0, 0.25

        def get_config(self):
            return {}

    assert EveryTen().should_prune(20) and not EveryTen().should_prune(21)
