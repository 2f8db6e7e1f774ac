"""A recipe with a latency budget: channels planned with a latency model measured on this
machine, shrunk and fine-tuned; the report shows predicted against measured latency."""

import json

import keras
import pytest

from edgeprune.recipe import RecipeError, load_recipe, run_recipe
from edgeprune.recipe.report import write_report

from .conftest import FAST, QUICKSTART

LATENCY = ["pruning.structure=channels", "pruning.criterion=l1", "pruning.skip_layers=[]",
           "quantize.mode=none",
           "pruning.allocation={budget: {latency_fraction: 0.7, target: local}, "
           "sparsities: [0.25, 0.5, 0.75]}"]


def test_latency_budget_run_plans_shrinks_and_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the latency measurements
    out = tmp_path / "run"
    state = run_recipe(load_recipe(QUICKSTART, FAST + LATENCY), out)
    budget = state["finished"]["allocate"]["latency_budget"]
    assert budget["precision"] == "float32" and budget["target"] == "local"
    assert budget["budget_ms"] == pytest.approx(0.7 * budget["dense_measured_ms"])
    # Planned with plan_for_latency: the first plan for the budget itself, each plan timed on
    # the target, the one measured closest kept.
    first = budget["rounds"][0]
    assert first["goal_ms"] == budget["budget_ms"] and first["predicted_ms"] <= first["goal_ms"]
    assert len(budget["rounds"]) in (1, 2, 3)
    assert budget["planned_measured_ms"] == min(
        (r["measured_ms"] for r in budget["rounds"]),
        key=lambda ms: abs(ms / budget["budget_ms"] - 1))
    allocation = json.loads((out / "allocation.json").read_text())
    assert allocation["structure"] == "channels" and allocation["round_to"]
    latency_model = json.loads((out / "latency_model.json").read_text())
    assert latency_model["measured_probes"] > 0
    # The prune stage fine-tuned the shrunk model: fewer channels than the baseline.
    baseline = keras.models.load_model(out / "baseline.keras")
    pruned = keras.models.load_model(out / "pruned.keras")
    assert pruned.count_params() < baseline.count_params()
    report = (out / "report" / "report.md").read_text()
    assert "Latency budget: predicted and measured" in report
    assert "plan, timed when planning" in report
    assert "latency_budget_0.png" in report
    write_report([str(out)], str(tmp_path / "again"), formats=["markdown"])
    assert (tmp_path / "again" / "latency_budget_0.png").exists()


def test_latency_budget_needs_channels_and_one_target(tmp_path):
    with pytest.raises(RecipeError, match="latency budget allocates channels"):
        load_recipe(QUICKSTART, LATENCY[1:] + ["pruning.structure=unstructured"])
    with pytest.raises(RecipeError, match="latency_ms .* or latency_fraction"):
        load_recipe(QUICKSTART, LATENCY[:-1] + [
            "pruning.allocation={budget: {latency_ms: 1.0, latency_fraction: 0.5}}"])
