"""How a recipe's pruning section becomes prune_low_magnitude calls: groups, schedules in epochs."""

import keras
import pytest

import edgeprune as ep
from edgeprune.recipe import RecipeError, load_recipe
from edgeprune.recipe.stages.prune import apply_pruning, make_schedule

from .conftest import QUICKSTART

STEPS_PER_EPOCH = 10


def small_model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(16, name="fc")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="classifier")(x))


def pruning_section(overrides):
    return load_recipe(QUICKSTART, overrides)["pruning"]


def wrappers_by_layer(model):
    return {layer.layer.name: layer for layer in model.layers
            if isinstance(layer, ep.PruneLowMagnitude)}


def test_schedule_in_epochs_becomes_steps():
    spec = pruning_section([])["schedule"]  # begin 0, end 4 epochs, frequency 10
    schedule = make_schedule(spec, STEPS_PER_EPOCH, epochs=6)
    assert (schedule.begin_step, schedule.end_step) == (0, 4 * STEPS_PER_EPOCH)
    assert schedule(4 * STEPS_PER_EPOCH) == (True, pytest.approx(0.8))
    steps = make_schedule({**spec, "unit": "steps", "begin": 5, "end": 25}, STEPS_PER_EPOCH, 6)
    assert (steps.begin_step, steps.end_step) == (5, 25)


def test_a_schedule_that_never_updates_the_masks_is_refused():
    spec = {**pruning_section([])["schedule"], "frequency": 100}
    with pytest.raises(RecipeError, match=r"pruning.schedule: the first mask update would be at "
                                          r"step 100 .* pruning stops at step 40"):
        make_schedule(spec, STEPS_PER_EPOCH, epochs=6)


def test_groups_get_their_own_settings_and_the_rest_the_sections():
    pruning = pruning_section([
        "pruning.groups=[{layers: ['conv*'], block_size: [1, 4]}, {layers: [fc], skip: true}]"])
    pruned = apply_pruning(small_model(), pruning, STEPS_PER_EPOCH, epochs=6)
    wrappers = wrappers_by_layer(pruned)
    assert sorted(wrappers) == ["conv1", "conv2"]  # fc skipped by its group, classifier by the
    assert wrappers["conv1"].block_size == (1, 4)  # section's skip_layers
    assert wrappers["conv2"].pruning_schedule.final_sparsity == pytest.approx(0.8)


def test_group_schedule_replaces_the_sections_and_layers_are_taken_once():
    pruning = pruning_section([
        "pruning.skip_layers=[]",
        "pruning.groups=[{layers: [conv1], schedule: {final_sparsity: 0.3, frequency: 5}}, "
        "{layers: ['conv*', fc], sparsity_m_by_n: [2, 4]}]"])
    wrappers = wrappers_by_layer(apply_pruning(small_model(), pruning, STEPS_PER_EPOCH, 6))
    assert wrappers["conv1"].pruning_schedule.final_sparsity == pytest.approx(0.3)
    assert wrappers["conv1"].sparsity_m_by_n is None
    assert wrappers["conv2"].sparsity_m_by_n == wrappers["fc"].sparsity_m_by_n == (2, 4)
    assert wrappers["classifier"].pruning_schedule.final_sparsity == pytest.approx(0.8)


def test_a_group_that_matches_nothing_says_which_layers_exist():
    pruning = pruning_section(["pruning.groups=[{layers: ['dense*']}]"])
    with pytest.raises(RecipeError, match=r"pruning.groups\[0\].layers: \['dense\*'\] match no "
                                          r"layer .* conv1, conv2, flatten, fc, classifier"):
        apply_pruning(small_model(), pruning, STEPS_PER_EPOCH, 6)


def test_channels_structure_wraps_the_graph_and_shrinks_after_training(digits, tmp_path):
    from edgeprune.recipe.training import compile_for

    pruning = pruning_section(["pruning.structure=channels", "pruning.criterion=l2",
                               "pruning.round_to=2", "pruning.schedule.final_sparsity=0.5",
                               "pruning.schedule.end=1", "pruning.skip_layers=[classifier]"])
    pruned = apply_pruning(small_model(), pruning, STEPS_PER_EPOCH, epochs=1)
    assert set(wrappers_by_layer(pruned)) >= {"conv1", "conv2"}
    (x, y), _ = digits
    compile_for(pruned, pruning["fine_tune"]).fit(
        x[:STEPS_PER_EPOCH * 32], y[:STEPS_PER_EPOCH * 32], batch_size=32, epochs=1, verbose=0,
        callbacks=[ep.UpdatePruningStep()])
    small = ep.shrink(ep.strip_pruning(pruned))
    assert small.get_layer("conv1").filters == small.get_layer("conv2").filters == 4
    assert small.get_layer("classifier").units == 10


def test_sensitivity_allocation_sets_each_layers_target(tmp_path):
    import json

    from edgeprune.recipe import run_recipe

    from .conftest import FAST

    out = tmp_path / "run"
    recipe = load_recipe(QUICKSTART, FAST + [
        "pruning.skip_layers=[]",
        "pruning.allocation={target: 0.8, sparsities: [0.5, 0.8, 0.95], skip: [classifier]}"])
    state = run_recipe(recipe, out, until="strip")
    assert list(state["finished"]) == ["baseline", "allocate", "prune", "strip"]
    allocation = json.loads((out / "allocation.json").read_text())
    assert allocation["method"] == "sensitivity" and allocation["sparsity"]["classifier"] == 0
    assert "conv1" in json.loads((out / "sensitivity.json").read_text())["metrics"]
    stripped = keras.models.load_model(out / "stripped.keras")
    kept = total = 0
    for name, target in allocation["sparsity"].items():
        kernel = stripped.get_layer(name).kernel.numpy()
        assert abs(float((kernel == 0).mean()) - target) < 0.01
        kept, total = kept + (kernel != 0).sum(), total + kernel.size
    assert abs(1 - kept / total - 0.8) < 0.01
