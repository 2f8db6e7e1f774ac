"""`pruning.iterative`: the lottery_ticket recipe through the CLI, its errors, resuming by round."""

import json
import os

import keras
import numpy as np
import pytest

from edgeprune import cli
from edgeprune.sparsity.wrapper import pruning_wrappers
from edgeprune.choose.iterative import round_sparsity
from edgeprune.recipe import RecipeError, load_recipe, run_recipe

from .conftest import LOTTERY_TICKET, SHORT_BENCHMARK
from .test_recipe_run import log_lines

# Two rounds of one epoch each after two dense epochs: every stage in a few seconds.
FAST = ["training.epochs=2", "pruning.fine_tune.epochs=1", "pruning.iterative.rounds=2",
        "pruning.iterative.rewind_step=5", SHORT_BENCHMARK]
PRUNED_LAYERS = ("conv1", "conv2", "fc")


class TrainingRecorder(keras.callbacks.Callback):
    """Records every `fit` of the run as "pruned" or "dense"; raises KeyboardInterrupt (Ctrl-C)
    as the `interrupt_at`-th pruned training begins."""

    def __init__(self, interrupt_at=None):
        super().__init__()
        self.interrupt_at = interrupt_at
        self.fits = []

    def on_train_begin(self, logs=None):
        self.fits.append("pruned" if pruning_wrappers(self.model) else "dense")
        if self.fits.count("pruned") == self.interrupt_at:
            raise KeyboardInterrupt


def kernel_sparsity(path):
    model = keras.models.load_model(path)
    return {name: float(np.mean(model.get_layer(name).kernel.numpy() == 0))
            for name in PRUNED_LAYERS + ("classifier",)}


def test_lottery_ticket_end_to_end_reaches_the_sparsity_round_by_round(tmp_path):
    out = tmp_path / "run"
    argv = ["run", LOTTERY_TICKET, "--out", str(out)]
    assert cli.main(argv + [arg for override in FAST for arg in ("--set", override)]) == 0
    state = json.loads((out / "state.json").read_text())
    assert list(state["finished"]) == ["baseline", "prune", "strip", "convert", "benchmark",
                                       "report"]
    rounds = json.loads((out / "imp" / "imp.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    for r in rounds:  # each round's model on disk, pruned layers at the geometric target
        reached = kernel_sparsity(out / "imp" / r["model_path"])
        for name in PRUNED_LAYERS:
            assert reached[name] == pytest.approx(round_sparsity(0.8, r["round"] / 2), abs=0.01)
        assert reached["classifier"] == 0
    stripped = kernel_sparsity(out / "stripped.keras")
    assert stripped == kernel_sparsity(out / "imp" / "round_2.keras")
    rows = {row["label"]: row for record in state["finished"].values()
            for row in record.get("artifacts", [])}
    pruned = rows["pruned (Keras, IMP round 2)"]
    assert pruned["accuracy"] == pytest.approx(rounds[-1]["metric"])  # both on the test split
    assert rows["final .tflite (int8)"]["accuracy"] > 0.8
    assert pruned["nonzero_params"] < rows["baseline (Keras, dense)"]["nonzero_params"] / 3


def test_an_interrupted_run_resumes_after_the_last_finished_round(tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe(LOTTERY_TICKET, FAST)
    first = TrainingRecorder(interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, out, callbacks=[first])
    assert first.fits == ["dense", "dense", "pruned", "pruned"]  # baseline, round 0, 1, 2
    assert [r["round"] for r in json.loads((out / "imp" / "imp.json").read_text())["rounds"]] \
        == [0, 1]
    round_1_mtime = os.stat(out / "imp" / "round_1.keras").st_mtime_ns

    second = TrainingRecorder()
    state = run_recipe(recipe, out, until="strip", callbacks=[second])
    assert second.fits == ["pruned"]  # only round 2: baseline, rounds 0 and 1 are not redone
    assert os.stat(out / "imp" / "round_1.keras").st_mtime_ns == round_1_mtime
    assert list(state["finished"]) == ["baseline", "prune", "strip"]
    assert "resume prune after IMP round 1" in log_lines(out)
    assert kernel_sparsity(out / "stripped.keras")["fc"] == pytest.approx(0.8, abs=0.01)

    # --restart forgets the rounds too: round 0 is trained again.
    third = TrainingRecorder()
    run_recipe(recipe, out, until="prune", restart=True, callbacks=[third])
    assert third.fits == ["dense", "dense", "pruned", "pruned"]


def error_of(overrides):
    with pytest.raises(RecipeError) as info:
        load_recipe(LOTTERY_TICKET, overrides)
    return str(info.value)


def test_a_bad_iterative_block_gets_the_documented_errors():
    message = error_of(["pruning.iterative={rounds: three, rewnd_step: 5, final_sparsity: 1.2}"])
    assert "pruning.iterative.rounds: expected integer, got str 'three'" in message
    assert ("pruning.iterative.rewnd_step: unknown key; allowed: final_sparsity, rewind_step, "
            "rounds (did you mean 'rewind_step'?)") in message
    assert "pruning.iterative.final_sparsity: 1.2 must be below 1" in message
    assert ("pruning.iterative.rewind_step: expected integer or null, got str 'early'"
            in error_of(["pruning.iterative.rewind_step=early"]))
    assert "pruning.iterative: 'rounds' is a required property" in error_of(
        ["pruning.iterative={final_sparsity: 0.8}"])
    assert "pruning.iterative.final_sparsity: required (the sparsity after the last round)" in \
        error_of(["pruning.iterative={rounds: 2}"])


def test_settings_iterative_pruning_cannot_use_are_refused_up_front():
    message = error_of(["pruning.structure=channels", "pruning.criterion=l1",
                        "pruning.sparsity_m_by_n=[2, 4]"])
    assert "pruning.iterative: prunes single weights by magnitude; it does not apply to " \
           "structure: channels" in message
    assert "pruning.sparsity_m_by_n: does not apply to pruning.iterative" in message
    allocated = error_of(["pruning.allocation={method: uniform, target: 0.8}",
                          "pruning.scope=global"])
    assert "pruning.iterative.final_sparsity: the per-layer targets come from " \
           "pruning.allocation; leave it out" in allocated
    assert "pruning.scope: global ranks every layer against one target" in allocated


def test_a_rewind_step_past_round_0_fails_before_any_pruning(tmp_path):
    recipe = load_recipe(LOTTERY_TICKET, ["training.epochs=0", "pruning.fine_tune.epochs=1",
                                          "pruning.iterative.rewind_step=1000"])
    # Refused before the first stage (the run's preflight), as `edgeprune validate` refuses it.
    with pytest.raises(RecipeError, match=r"pruning.iterative.rewind_step: 1000 is past the end "
                                          r"of round 0 \(1 epochs of 43 steps\)"):
        run_recipe(recipe, tmp_path / "run", until="prune")
    assert not (tmp_path / "run" / "imp").exists()
    assert not (tmp_path / "run" / "baseline.keras").exists()
