"""Allocation: budgets met to the weight, sensitive layers spared, heuristics, the core hook."""

import json

import keras
import numpy as np
import pytest

import edgeprune as ep
from edgeprune.sparsity.masks import kept_count
from edgeprune.choose.units import unstructured_term
from tests.choose.conftest import accuracy_on, compile_and_fit, named_cnn

LEVELS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


@pytest.fixture(scope="module")
def table(trained_cnn, digits):
    return ep.sensitivity_scan(trained_cnn, accuracy_on(digits), sparsities=LEVELS,
                               progress=False)


def one_shot(model, allocation):
    """Prunes `model` now to the allocation's per-layer targets, through prune_low_magnitude."""
    pruned = ep.prune_low_magnitude(
        model, pruning_schedule=allocation.schedules(ep.ConstantSparsity(0.5, 0)))
    controller = ep.PruningController(pruned)
    controller.begin()
    controller.update_masks(force=True)
    return ep.strip_pruning(pruned)


def kernel_positions(model):
    """Output positions per kernel weight, read from each layer's output shape."""
    return {layer.name: int(np.prod(layer.output.shape[1:-1])) for layer in model.layers
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))}


@pytest.mark.parametrize("budget", ["sparsity", "params", "macs", "bytes"])
def test_allocation_meets_its_budget_to_one_weight_per_layer(trained_cnn, table, budget):
    total_params = trained_cnn.count_params()
    positions = kernel_positions(trained_cnn)
    sizes = {row["layer"]: row["size"] for row in ep.sparsity_report(trained_cnn)}
    dense_macs = sum(positions[name] * size for name, size in sizes.items())
    target = {"sparsity": 0.9, "params": 0.2 * total_params, "macs": 0.3 * dense_macs,
              "bytes": 4 * 0.25 * total_params}[budget]

    allocation = ep.allocate(table, target, budget=budget)
    report = ep.sparsity_report(one_shot(trained_cnn, allocation))
    zeros = {row["layer"]: row["zeros"] for row in report}
    kept = {name: sizes[name] - zeros[name] for name in sizes}
    realized, tolerance = {
        "sparsity": (sum(zeros.values()) / sum(sizes.values()), len(sizes) / sum(sizes.values())),
        "params": (total_params - sum(zeros.values()), len(sizes)),
        "macs": (sum(positions[n] * kept[n] for n in sizes), sum(positions.values())),
        "bytes": (4 * (total_params - sum(zeros.values())), 4 * len(sizes)),
    }[budget]
    assert abs(realized - target) <= tolerance
    assert kept == allocation.kept()


def test_allocation_spares_the_sensitive_layer(fragile_cnn, digits):
    accuracy = accuracy_on(digits)
    table = ep.sensitivity_scan(fragile_cnn, accuracy, sparsities=LEVELS, progress=False)
    allocated = ep.allocate(table, 0.8)
    uniform = ep.uniform_allocation(fragile_cnn, 0.8)
    assert allocated.sparsity["fragile"] < 0.8 < allocated.sparsity["hidden"]
    assert allocated.overall_sparsity() == pytest.approx(uniform.overall_sparsity(), abs=1e-4)
    assert accuracy(one_shot(fragile_cnn, allocated)) > accuracy(one_shot(fragile_cnn, uniform))


def synthetic_table(flat, steep):
    return ep.SensitivityTable(baseline=1.0, sparsities=(0.5, 0.9, 0.98),
                               metrics={"flat": flat, "steep": steep},
                               sizes={"flat": 100, "steep": 100},
                               terms=[unstructured_term(unit, 100, 100)
                                      for unit in ("flat", "steep")])


def test_cheapest_cuts_first_and_the_last_one_partial():
    table = synthetic_table(flat=[1.0, 1.0, 0.0], steep=[0.5, 0.1, 0.02])
    allocation = ep.allocate(table, 0.5)
    assert allocation.sparsity == pytest.approx({"flat": 0.9, "steep": 0.1})
    assert allocation.predicted_drop == pytest.approx(0.1)
    # A cliff followed by a plateau: the convex hull sees the plateau's cheap average.
    cliff = synthetic_table(flat=[1.0, 1.0, 0.0], steep=[0.6, 0.6, 0.6])
    assert ep.allocate(cliff, 0.9).sparsity == pytest.approx({"flat": 0.9, "steep": 0.9})


def test_skip_and_cap_and_impossible_targets():
    table = synthetic_table(flat=[1.0, 1.0, 0.0], steep=[0.5, 0.1, 0.02])
    skipped = ep.allocate(table, 0.45, skip=["flat"])
    assert skipped.sparsity == pytest.approx({"flat": 0.0, "steep": 0.9})
    capped = ep.allocate(table, 0.5, max_sparsity=0.5)
    assert capped.sparsity == pytest.approx({"flat": 0.5, "steep": 0.5})
    with pytest.raises(ValueError, match="reachable target is at most 0.5;.*max_sparsity"):
        ep.allocate(table, 0.6, max_sparsity=0.5)
    # Other budgets' targets are what remains: the error names the smallest reachable.
    dense_params = table.remaining({}, "params")
    with pytest.raises(ValueError, match=f"reachable target is at least {dense_params / 2:.4g};"):
        ep.allocate(table, 0.3 * dense_params, budget="params", max_sparsity=0.5)
    with pytest.raises(ValueError, match="budget"):
        ep.allocate(table, 0.5, budget="latency")
    with pytest.raises(ValueError, match="target"):
        ep.allocate(table, 1.2)
    with pytest.raises(ValueError, match="target"):
        ep.allocate(table, 10 ** 6, budget="params")
    with pytest.raises(ValueError, match="skip.*nope"):
        ep.allocate(table, 0.5, skip=["nope"])


@pytest.mark.every_backend
def test_uniform_with_first_and_last_layers_dense():
    model = named_cnn()  # untrained: allocation and pruning read the weights only
    allocation = ep.uniform_allocation(model, 0.8, skip_first_last=True)
    assert allocation.sparsity["conv1"] == allocation.sparsity["head"] == 0.0
    assert allocation.sparsity["conv2"] == allocation.sparsity["hidden"] > 0.8
    report = ep.sparsity_report(one_shot(model, allocation))
    zeros, size = sum(r["zeros"] for r in report), sum(r["size"] for r in report)
    assert abs(zeros - 0.8 * size) <= len(report)
    with pytest.raises(ValueError, match="sparsity 0.99"):
        ep.uniform_allocation(model, 0.99, skip=["hidden"])


@pytest.mark.every_backend
def test_global_magnitude_allocation_is_the_core_global_ranking():
    model = named_cnn()
    allocation = ep.global_magnitude_allocation(model, 0.9)
    pruned = ep.prune_low_magnitude(model, pruning_schedule=ep.ConstantSparsity(0.9, 0),
                                    pruning_scope="global")
    controller = ep.PruningController(pruned)
    controller.begin()
    controller.update_masks(force=True)
    realized = {row["layer"]: row["sparsity"] for row in ep.sparsity_report(pruned)}
    assert realized == pytest.approx(allocation.sparsity)
    assert len(set(np.round(list(realized.values()), 2))) > 1  # not uniform


def test_schedules_drive_gradual_training_per_layer(trained_cnn, digits):
    allocation = ep.Allocation({"conv1": 0.0, "conv2": 0.6, "hidden": 0.95, "head": 0.3},
                               sizes={r["layer"]: r["size"] for r in
                                      ep.sparsity_report(trained_cnn)})
    schedules = allocation.schedules(ep.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=20,
                                                        frequency=5))
    assert list(schedules) == ["conv2", "hidden", "head"]
    pruned = ep.prune_low_magnitude(trained_cnn, pruning_schedule=schedules)
    assert not isinstance(pruned.get_layer("conv1"), ep.PruneLowMagnitude)
    compile_and_fit(pruned, digits, epochs=1, callbacks=[ep.UpdatePruningStep()])
    final = ep.strip_pruning(pruned)
    zeros = {row["layer"]: row["zeros"] for row in ep.sparsity_report(final)}
    assert zeros == {name: allocation.sizes[name] - kept
                     for name, kept in allocation.kept().items()}


def test_per_layer_schedule_dict_is_checked(trained_cnn):
    schedule = ep.ConstantSparsity(0.5, 0)
    with pytest.raises(ValueError, match="does not have.*nope"):
        ep.prune_low_magnitude(trained_cnn, pruning_schedule={"nope": schedule})
    with pytest.raises(ValueError, match="no weight to prune.*flatten"):
        ep.prune_low_magnitude(trained_cnn, pruning_schedule={"flatten": schedule})
    with pytest.raises(ValueError, match="apply_channel_allocation"):
        ep.prune_low_magnitude(trained_cnn, pruning_schedule={"hidden": schedule},
                               structure="channels")
    with pytest.raises(ValueError, match="pruning_scope='layer'"):
        ep.prune_low_magnitude(trained_cnn, pruning_schedule={"hidden": schedule},
                               pruning_scope="global")
    with pytest.raises(ValueError, match="needs a model"):
        ep.prune_low_magnitude(keras.layers.Dense(3), pruning_schedule={"hidden": schedule})
    with pytest.raises(ValueError, match="no prunable layer"):
        ep.prune_low_magnitude(trained_cnn, pruning_schedule={})


def test_allocation_as_plain_dict_and_with_target(table):
    allocation = ep.allocate(table, 0.9)
    data = json.loads(json.dumps(allocation.to_dict()))
    assert ep.Allocation.from_dict(data) == allocation
    assert data["sparsity"] == allocation.sparsity
    decay = ep.with_target(ep.PolynomialDecay(0.6, 0.8, begin_step=0, end_step=10), 0.4)
    assert (decay.initial_sparsity, decay.final_sparsity) == (0.4, 0.4)

    class Halfway(ep.PruningSchedule):
        def __call__(self, step):
            return step == 5, 0.5

        def get_config(self):
            return {}

    with pytest.raises(ValueError, match="Halfway"):
        ep.with_target(Halfway(), 0.3)


def test_kept_counts_follow_the_core_rounding():
    allocation = ep.Allocation({"a": 0.25, "b": 0.999}, {"a": 10, "b": 10})
    assert allocation.kept() == {"a": kept_count(10, 0.25), "b": 1}  # at least one survives
    assert allocation.overall_sparsity() == pytest.approx(1 - (8 + 1) / 20)
