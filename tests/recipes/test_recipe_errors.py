"""Bad recipes fail up front with the documented messages: file, key path, what is allowed."""

import os

import numpy as np
import pytest

from edgeprune import cli
from edgeprune.recipe import RecipeError, load_recipe
from edgeprune.recipe.sources import import_factory, load_data
from edgeprune.recipe.stages import enabled_stages
from edgeprune.recipe.stages.prune import pruning_passes

from .conftest import QUICKSTART, RECIPES

MINIMAL = """
model:
  factory: ../models.py:build
"""


def error_of(path, overrides=()):
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return str(info.value)


def test_typo_in_a_key_names_file_path_allowed_keys_and_suggestion(write_recipe):
    path = write_recipe("""
        model: {application: {name: MobileNetV2, input_shape: [32, 32, 3], classes: 10}}
        pruning:
          schedule: {final_sparsity: 0.5}
          fine_tune: {epohcs: 2}
        """)
    message = error_of(path)
    assert path in message
    assert "pruning.fine_tune.epohcs: unknown key" in message
    assert "allowed: epochs, from_logits, learning_rate, loss, optimizer" in message
    assert "did you mean 'epochs'?" in message


def test_wrong_type_and_wrong_value_are_all_reported_at_once(write_recipe):
    path = write_recipe("""
        model: {application: {name: MobileNetV2, input_shape: [32, 32, 3], classes: 10}}
        training: {epochs: three}
        quantize: {mode: int9}
        pruning: {block_size: [1, 4, 2], schedule: {final_sparsity: 1.5}}
        """)
    message = error_of(path)
    assert "training.epochs: expected integer, got str 'three'" in message
    assert ("quantize.mode: 'int9' is not allowed; allowed: none, dynamic, float16, int8, "
            "int16x8 (did you mean 'int8'?)") in message
    assert "pruning.block_size:" in message
    assert "pruning.schedule.final_sparsity:" in message


def test_model_needs_exactly_one_source(write_recipe):
    message = error_of(write_recipe("model: {}\n"))
    assert "model: give exactly one of keras_file, application, factory" in message


def test_missing_files_are_named_with_where_they_were_looked_for(write_recipe, tmp_path):
    path = write_recipe("""
        model: {keras_file: models/missing.keras}
        data: {source: npz, path: data/digits.npz}
        """)
    message = error_of(path)
    assert f"model.keras_file: file not found: models/missing.keras (looked for " \
           f"{tmp_path / 'models' / 'missing.keras'})" in message
    assert "data.path: file not found: data/digits.npz" in message


def test_missing_factory_file_and_misspelt_factory_function(write_recipe, tmp_path):
    assert "model.factory: file not found: ../models.py" in error_of(write_recipe(MINIMAL))
    (tmp_path / "models.py").write_text("def build_model():\n    return None\n")
    with pytest.raises(RecipeError, match=r"has no function 'build_modle' \(did you mean "
                                          r"'build_model'\?\)"):
        import_factory("models.py:build_modle", str(tmp_path))


def test_unknown_application_gets_a_suggestion(write_recipe):
    path = write_recipe("model: {application: {name: MobileNetV22, input_shape: [32, 32, 3], "
                        "classes: 10}}\n")
    assert "model.application.name: 'MobileNetV22' is not in keras.applications " \
           "(did you mean 'MobileNetV2'?)" in error_of(path)


def test_settings_that_do_not_go_together(write_recipe):
    path = write_recipe("""
        model: {application: {name: MobileNetV2, input_shape: [32, 32, 3], classes: 10}}
        data: {source: npz}
        pruning: {block_size: [1, 4], sparsity_m_by_n: [2, 4], criterion: l1}
        quantize: {sparse_storage: true}
        export: {c_array: true}
        """)
    message = error_of(path)
    assert "data.path: required when data.source is 'npz'" in message
    assert "pruning: block_size and sparsity_m_by_n cannot be combined" in message
    assert "pruning.criterion: 'l1' ranks channels" in message
    assert "export.c_array: TFLite Micro has no DENSIFY kernel" in message


def test_overrides_are_checked_like_the_file():
    assert ("pruning.fine_tune.loss: 'sparse_categorical_crossentropi' is not a Keras loss "
            "(did you mean 'sparse_categorical_crossentropy'?)") in error_of(
        QUICKSTART, ["pruning.fine_tune.loss=sparse_categorical_crossentropi"])
    message = error_of(QUICKSTART, ["pruning.fine_tune.epochs=many"])
    assert "(with --set pruning.fine_tune.epochs=many)" in message
    assert "pruning.fine_tune.epochs: expected integer, got str 'many'" in message
    assert "must look like key.path=value" in error_of(QUICKSTART, ["pruning.fine_tune.epochs"])


def test_yaml_is_read_with_safe_load_only(write_recipe):
    path = write_recipe("model: !!python/object/apply:os.system ['echo owned']\n")
    assert "not valid YAML" in error_of(path)


def test_skip_layers_typo_is_caught_against_the_model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"),
                              keras.layers.Dense(2, name="classifier")])
    with pytest.raises(RecipeError, match=r"no layer 'clasifier' \(did you mean 'classifier'\?\)"):
        pruning_passes(model, {"skip_layers": ["clasifier"]})


def test_npz_without_the_expected_arrays(write_recipe, tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((4, 2)), y_train=np.zeros(4))
    recipe = load_recipe(write_recipe("""
        model: {application: {name: MobileNetV2, input_shape: [32, 32, 3], classes: 10}}
        data: {source: npz, path: d.npz}
        """))
    with pytest.raises(RecipeError, match=r"lacks arrays \['x_test', 'y_test'\]"):
        load_data(recipe)


def test_cli_validate_prints_the_errors_and_fails(write_recipe, capsys):
    path = write_recipe("model: {factroy: m.py:f}\n")
    assert cli.main(["validate", path]) == 1
    err = capsys.readouterr().err
    assert "model.factroy: unknown key" in err and "did you mean 'factory'?" in err


def test_every_shipped_recipe_can_run_here(capsys):
    recipes = sorted(os.path.join(RECIPES, name) for name in os.listdir(RECIPES))
    assert cli.main(["validate", *recipes]) == 0
    assert capsys.readouterr().out.count(": ok (baseline -> ") == len(recipes)


@pytest.mark.parametrize("name", sorted(os.listdir(RECIPES)))
def test_every_shipped_recipe_validates(name):
    recipe = load_recipe(os.path.join(RECIPES, name))
    stages = [stage.name for stage in enabled_stages(recipe)]
    assert stages[0] == "baseline" and stages[-2:] in (["convert", "report"],
                                                       ["benchmark", "report"])
    assert ("prune" in stages) == ("pruning" in recipe)


def test_a_failing_stage_is_reported_and_logged(write_recipe, tmp_path, capsys):
    (tmp_path / "models.py").write_text("def build():\n    raise ValueError('no such width')\n")
    path = write_recipe("model: {factory: models.py:build}\n")
    assert cli.main(["run", path, "--out", str(tmp_path / "run"), "--until", "baseline"]) == 1
    assert ("edgeprune run: stage baseline failed: ValueError: no such width"
            in capsys.readouterr().err)
    assert "failed baseline: ValueError: no such width" in (tmp_path / "run" / "stages.log").read_text()


def test_a_folder_in_use_by_a_live_run_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    from edgeprune.recipe import run_recipe

    recipe = load_recipe(QUICKSTART, ["training.epochs=0"])
    out = tmp_path / "run"
    out.mkdir()
    (out / ".edgeprune.lock").write_text(str(os.getpid()))
    with pytest.raises(RecipeError, match=r"is in use by another edgeprune run \(pid \d+\)"):
        run_recipe(recipe, out, until="baseline")
    (out / ".edgeprune.lock").write_text("999999999")  # no such process
    state = run_recipe(recipe, out, until="baseline")
    assert list(state["finished"]) == ["baseline"]
    assert not (out / ".edgeprune.lock").exists()


def test_allocation_settings_that_do_not_go_together():
    message = error_of(QUICKSTART, ["pruning.allocation={method: uniform, target: 2, budget: macs}",
                                    "pruning.groups=[{layers: [fc]}]"])
    assert "pruning.groups: per-layer sparsities come from pruning.allocation" in message
    assert "pruning.allocation.budget: 'macs' needs method: sensitivity" in message


def test_channel_pruning_refuses_weight_granularity_settings():
    message = error_of(QUICKSTART, ["pruning.structure=channels", "pruning.criterion=l2",
                                    "pruning.block_size=[1, 4]", "pruning.groups=[{layers: [fc]}]"])
    assert "pruning.block_size: does not apply to structure: channels" in message
    assert "pruning.groups: does not apply to structure: channels" in message
    assert "l1, l2, bn_gamma or taylor" in error_of(QUICKSTART, ["pruning.structure=channels",
                                                                 "pruning.criterion=magnitude"])
    recipe = load_recipe(QUICKSTART, ["pruning.structure=channels", "pruning.criterion=taylor"])
    assert recipe["pruning"]["criterion"] == "taylor"
