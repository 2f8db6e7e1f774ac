"""`distribution:` in a recipe: `edgeprune run` started in two processes (JAX, 127.0.0.1) trains
data parallel and leaves one run folder, written by the first process only."""

import json

import keras
import numpy as np
import pytest

from edgeprune.recipe import load_recipe, run_recipe
from edgeprune.recipe.schema import RecipeError
from tests.distributed.processes import free_ports, outputs, run_workers
from tests.recipes.conftest import QUICKSTART

# The quickstart in one epoch each, no benchmark (it would run in each process).
TINY = ["training.epochs=1", "pruning.fine_tune.epochs=1", "pruning.schedule.end=1",
        "benchmark.targets=[]", "export.baseline_tflite=false", "report.formats=[markdown]"]
STAGES = ["baseline", "prune", "strip", "convert", "report"]


def test_edgeprune_run_on_two_processes_writes_one_run_folder(tmp_path):
    out, port = tmp_path / "run", free_ports(1)[0]
    sets = [f"distribution.coordinator=127.0.0.1:{port}", "distribution.num_processes=2", *TINY]
    commands = [["run", QUICKSTART, "--backend", "jax", "--out", out,
                 *[arg for value in [*sets, f"distribution.process_id={index}"]
                   for arg in ("--set", value)]] for index in range(2)]
    codes = run_workers(["-m", "edgeprune.cli"], commands, [{}, {}], tmp_path, timeout=900)
    assert codes == [0, 0], outputs(tmp_path, 2)

    assert list(json.loads((out / "state.json").read_text())["finished"]) == STAGES
    log = (out / "stages.log").read_text()
    for stage in STAGES:  # one writer: each stage started and finished once
        assert log.count(f"start {stage}\n") == 1 and log.count(f"finish {stage} (") == 1, log
    stripped = keras.models.load_model(out / "stripped.keras")
    kernels = [w for w in stripped.weights if w.name == "kernel"][:-1]  # classifier skipped
    assert [float(np.mean(np.asarray(k) == 0)) for k in kernels] == pytest.approx(
        [0.8] * len(kernels), abs=0.01)


def test_distribution_on_tensorflow_is_a_recipe_error_and_writes_nothing(tmp_path):
    recipe = load_recipe(QUICKSTART, ["distribution.coordinator=127.0.0.1:1",
                                      "distribution.num_processes=2"])
    with pytest.raises(RecipeError, match="distribution: .*JAX backend.*multi_worker_strategy"):
        run_recipe(recipe, tmp_path / "run")
    assert not (tmp_path / "run").exists()
