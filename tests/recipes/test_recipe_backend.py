"""`backend:` in recipes and `edgeprune run --backend`: the quickstart flow on JAX and PyTorch,
converted (through TensorFlow) to `.tflite` and ONNX."""

import json
import os
import subprocess
import sys

import keras
import onnxruntime
import pytest

import edgeprune as ep
from edgeprune.recipe import load_recipe, run_recipe
from edgeprune.recipe.schema import RecipeError
from tests.recipes.conftest import QUICKSTART, REPO

# The quickstart in one epoch each, int8, ONNX too, no benchmark (the benchmark is backend-free).
TINY = ["training.epochs=1", "pruning.fine_tune.epochs=1", "pruning.schedule.end=1",
        "benchmark.targets=[]", "export.baseline_tflite=false", "export.onnx=true",
        "report.formats=[markdown]"]


def check_run(out, backend):
    state = json.loads((out / "state.json").read_text())
    assert list(state["finished"]) == ["baseline", "prune", "strip", "convert", "report"]
    assert f"backend={backend}" in state["overrides"]
    row = state["finished"]["convert"]["artifacts"][-1]
    assert row["label"] == "final .tflite (int8)" and row["top1_agreement"] >= 0.9
    onnxruntime.InferenceSession(str(out / "model.onnx"))  # a valid ONNX model
    assert ep.size_report(out / "model.tflite").raw_bytes > 0
    assert "onnx: model.onnx via" in (out / "stages.log").read_text()


def test_run_recipe_with_backend_jax_runs_in_a_child_process(tmp_path):
    assert keras.config.backend() == "tensorflow"
    recipe = load_recipe(QUICKSTART, TINY + ["backend=jax"])
    state = run_recipe(recipe, tmp_path / "run")
    assert "report" in state["finished"]
    check_run(tmp_path / "run", "jax")


def test_cli_backend_torch_runs_in_its_own_process(tmp_path):
    out = tmp_path / "run"
    sets = [arg for override in TINY for arg in ("--set", override)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        REPO, os.environ.get("PYTHONPATH")])))
    env.pop("KERAS_BACKEND", None)
    result = subprocess.run([sys.executable, "-m", "edgeprune.cli", "run", QUICKSTART,
                             "--backend", "torch", "--out", str(out), *sets],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    check_run(out, "torch")


def test_an_unknown_backend_is_a_recipe_error_with_a_suggestion():
    with pytest.raises(RecipeError, match="backend: 'tensorfow' is not allowed.*tensorflow"):
        load_recipe(QUICKSTART, ["backend=tensorfow"])
