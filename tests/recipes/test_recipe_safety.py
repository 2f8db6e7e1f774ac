"""Issue 14, the recipe and CLI side: bad input is refused with a message naming the file and the
key path, never a traceback (items 3, 5, 6); resume never trusts a stale artifact (item 7); a run
never writes outside its folder (item 8); disabling SSH host-key checks is always said (item 10).
The property-based tests of recipe validation are in test_recipe_properties.py."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from edgeprune import cli

from .conftest import REPO


def run_cli(*args):
    """`python -m edgeprune.cli ARGS` in a fresh process: (exit status, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "edgeprune.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    return done.returncode, done.stdout, done.stderr


def assert_clean_error(status, err, *phrases):
    assert status == 1, err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, err


# Item 3: `edgeprune inspect` on a bad file.

def test_item3_inspect_bad_keras_files_names_the_file(tmp_path, capsys):
    not_zip = tmp_path / "not_zip.keras"
    not_zip.write_bytes(b"PK\x03\x04" + bytes(100))
    bad_config = tmp_path / "bad_config.keras"
    with zipfile.ZipFile(bad_config, "w") as archive:
        archive.writestr("config.json", "{not json")
    tflite_named_keras = tmp_path / "model.keras"
    tflite_named_keras.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(100))
    for path, phrase in ((not_zip, "not a Keras 3 model file"),
                         (bad_config, "Keras cannot load it (JSONDecodeError"),
                         (tflite_named_keras, "not a Keras 3 model file")):
        assert cli.main(["inspect", str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"edgeprune inspect: {path}: ") and phrase in err, err


def test_item3_inspect_bad_tflite_names_the_file(tmp_path, capsys):
    for name, content, phrase in (
            ("empty.tflite", b"", "too short to be a .tflite model"),
            ("zip.tflite", b"PK\x03\x04" + bytes(60), "not a TFLite model"),
            ("cut.tflite", b"\x10\x00\x00\x00TFL3" + bytes(8) + b"\xff" * 8,
             "not a valid Flatbuffer")):
        path = tmp_path / name
        path.write_bytes(content)
        assert cli.main(["inspect", str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"edgeprune inspect: {path}: ") and phrase in err, err


def cli_as_another_user(*commands):
    """`edgeprune COMMAND` for each command, unable to read mode-000 files (as root: as nobody),
    in one fresh Python; (stdout, stderr) with each command's exit status printed on stdout."""
    drop = ""
    if os.geteuid() == 0:  # imports first: nobody cannot read root's site-packages
        drop = ("import stat, zipfile, edgeprune.recipe.loader, edgeprune.recipe.stages, "
                "edgeprune.recipe.tflitestats, edgeprune.model.saving; "
                "os.setegid(65534); os.seteuid(65534)\n")
    code = ("import json, os, sys; from edgeprune import cli\n" + drop
            + "for command in json.loads(sys.argv[1]):\n"
              "    print('status', cli.main(command), flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(commands)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    return done.stdout, done.stderr


def test_item3_unreadable_files_are_named(tmp_path):
    commands = []
    for name in ("secret.keras", "secret.tflite", "secret.yaml"):
        path = tmp_path / name
        path.write_bytes(b"model: {factory: m.py:f}\n" if name.endswith(".yaml") else b"x" * 32)
        path.chmod(0)
        commands.append(["validate" if name.endswith(".yaml") else "inspect", str(path)])
    out, err = cli_as_another_user(*commands)
    assert out.split() == ["status", "1"] * 3 and "Traceback" not in err, err
    for _, path in commands:
        assert f"{path}: cannot read it (Permission denied)" in err


# Item 5: recipes are read with bounds, and refused early with the line or key path.

MINIMAL = "model: {application: {name: MobileNetV2, input_shape: [32, 32, 3], classes: 10}}\n"
ALIAS_BOMB = "".join(
    [f"a0: &a0 [{', '.join(['x'] * 9)}]\n"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)])


def refused(path, overrides=(), seconds=5, megabytes=50):
    """The RecipeError message of load_recipe(path), checked to come within the bounds."""
    import time
    import tracemalloc

    from edgeprune.recipe import RecipeError, load_recipe

    began = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(RecipeError) as info:
            load_recipe(path, overrides)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - began < seconds and peak < megabytes * 1e6
    message = str(info.value)
    assert message.startswith(f"{path}") and "Traceback" not in message
    return message


def test_item5_non_utf8_byte_in_a_comment_names_its_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(MINIMAL.encode() + b"# caf\xe9 au lait\n")
    assert "not UTF-8 text (byte 0xe9 on line 2); save the file as UTF-8" in refused(str(path))


def test_item5_keys_that_are_not_text_are_named(write_recipe):
    path = write_recipe(MINIMAL + "training: {1: 2, epochs: 1}\non: true\n")
    message = refused(path)
    assert "training.1 (line 2): the key '1' is read as a number, not text" in message
    assert "on (line 3): the key 'on' is read as a boolean, not text; quote it" in message


def test_item5_empty_file_with_set_and_sets_into_a_list(write_recipe):
    from edgeprune.recipe import load_recipe

    empty = write_recipe("", "empty.yaml")
    recipe = load_recipe(empty, ["model.application={name: MobileNetV2, input_shape: [32, 32, 3],"
                                 " classes: 10}"])
    assert recipe["model"]["application"]["name"] == "MobileNetV2"
    assert "a recipe is a YAML mapping of sections" in refused(empty)
    listed = write_recipe(MINIMAL + "report: {formats: [html]}\n", "listed.yaml")
    assert "report.formats is not a section" in refused(listed, ["report.formats.x=1"])
    assert "must look like key.path=value" in refused(listed, ["report..title=x"])


def test_item5_deep_nesting_is_refused_without_recursion_error(write_recipe):
    deep = write_recipe(MINIMAL + "data: {args: {x: " + "[" * 5000 + "]" * 5000 + "}}\n")
    assert "nested more than 32 levels deep" in refused(deep)
    from edgeprune.recipe import RecipeError, load_recipe

    with pytest.raises(RecipeError, match="nested more than 32 levels"):
        load_recipe(write_recipe(MINIMAL, "ok.yaml"), ["model.args=" + "[" * 3000 + "]" * 3000])


def test_item5_alias_bomb_and_cycles_are_refused_in_bounded_time_and_memory(write_recipe):
    bomb = write_recipe("model:\n  factory: m.py:f\n  args:\n" + "".join(
        "    " + line for line in ALIAS_BOMB.splitlines(keepends=True)))
    assert "more than 10000 values once its aliases (*name) are expanded" in \
        refused(bomb, seconds=3, megabytes=20)
    cycle = write_recipe(MINIMAL.replace("}}\n", "}, args: &x {a: [*x]}}\n"), "cycle.yaml")
    assert "model.args.a[0] (line 1): an alias refers to an anchor that contains " \
           "it (a cycle)" in refused(cycle)
    # Aliases within the bounds are fine, merge keys included.
    from edgeprune.recipe import load_recipe

    shared = write_recipe(MINIMAL + "training: &t {epochs: 1}\npruning: {fine_tune: {<<: *t, "
                          "learning_rate: 0.01}}\n", "shared.yaml")
    assert load_recipe(shared)["pruning"]["fine_tune"]["learning_rate"] == 0.01


def test_item5_huge_and_fifo_recipes_are_refused_unread(tmp_path):
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as f:
        f.write(MINIMAL.encode() + b"# " + b"x" * (40 << 20) + b"\n")
    assert "larger than the 1048576-byte limit for this file" in refused(str(huge), seconds=2)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert "not a regular file (it is a FIFO" in refused(str(fifo), seconds=2)


def test_item5_thousands_of_unknown_keys_give_one_screen(write_recipe):
    many = write_recipe(MINIMAL + "".join(f"key{i}: 1\n" for i in range(2000)))
    message = refused(many, seconds=30)
    lines = message.splitlines()
    assert len(lines) == 22 and lines[-1] == "  ... and 1980 more", lines[-3:]

def test_item5_validate_prints_the_capped_list(write_recipe, capsys):
    many = write_recipe(MINIMAL + "".join(f"key{i}: 1\n" for i in range(2000)))
    assert cli.main(["validate", many]) == 1
    err = capsys.readouterr().err
    assert_clean_error(1, err, "... and 1980 more")
    assert len(err) < 5000


# Item 6: validate refuses what run would refuse or turn into wrong results, before training.

FACTORY = '''\
import keras


def tiny(filters=4):
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(filters, 3, name="conv"),
                             keras.layers.Flatten(name="flat"), keras.layers.Dense(10, name="head")])
'''
TINY = """\
model: {factory: models.py:tiny}
training: {epochs: 1}
pruning: {fine_tune: {epochs: 1}, schedule: {final_sparsity: 0.5, frequency: 10}}
export: {baseline_tflite: false}
report: {formats: [markdown]}
"""


@pytest.fixture
def tiny_recipe(write_recipe, tmp_path):
    (tmp_path / "models.py").write_text(FACTORY)
    return write_recipe(TINY, "tiny.yaml")


@pytest.mark.parametrize("override, phrase", [
    ("training.learning_rate=.nan", "training.learning_rate (line 1): .nan is not a finite number"),
    ("pruning.fine_tune.learning_rate=-.inf", "-.inf is not a finite number"),
    ("pruning.schedule.power=-3", "pruning.schedule.power: -3 must be above 0"),
    ("pruning.sparsity_m_by_n=[4, 2]", "sparsity_m_by_n=(m, n) needs m < n, got (4, 2)"),
    ("training.epochs=3.0", "training.epochs: expected integer, got float 3.0"),
    ("benchmark.targets=[{target: micro, board: nano33blee}]",
     "benchmark.targets[0]: unknown board 'nano33blee'"),
    ("quantize.int8_io=true", "int8_io=True needs quantize='int8'"),
    ("pruning.schedule.frequency=100000", "pruning.schedule: the first mask update would be at "
                                          "step 100000"),
    ("pruning.skip_layers=[conv9]", "pruning.skip_layers: the model has no layer 'conv9' (did "
                                    "you mean 'conv'?)"),
    ("pruning.groups=[{layers: ['dense*'], skip: true}]", "match no layer"),
    ("name=../../x", "name: '../../x' is not a name of letters"),
])
def test_item6_validate_refuses_what_run_refuses(tiny_recipe, override, phrase, capsys):
    assert cli.main(["validate", tiny_recipe, "--set", override]) == 1
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err, err


def test_item6_duplicate_keys_are_refused(tiny_recipe, capsys):
    with open(tiny_recipe, "a") as f:
        f.write("training: {epochs: 2}\n")
    assert cli.main(["validate", tiny_recipe]) == 1
    assert "training: duplicate key (lines 2 and 6)" in capsys.readouterr().err


def test_item6_run_refuses_before_anything_trains(tiny_recipe, tmp_path):
    from edgeprune.recipe import RecipeError, load_recipe, run_recipe

    recipe = load_recipe(tiny_recipe, ["pruning.schedule.frequency=100000"])
    with pytest.raises(RecipeError, match="first mask update would be at step 100000"):
        run_recipe(recipe, tmp_path / "run")
    assert not (tmp_path / "run" / "baseline.keras").exists()
    assert "cannot run: pruning.schedule: the first mask update" in \
        (tmp_path / "run" / "stages.log").read_text()
    assert cli.main(["validate", tiny_recipe]) == 0  # the recipe itself is fine


# Item 7: resume never trusts a stale artifact.

def test_item7_resume_verifies_inputs_artifacts_and_checkpoints(tiny_recipe, tmp_path):
    from edgeprune.recipe import RecipeError, load_recipe, run_recipe

    out = tmp_path / "run"
    run_recipe(load_recipe(tiny_recipe), out, until="baseline")
    state = json.loads((out / "state.json").read_text())
    record = state["finished"]["baseline"]["files"]["baseline.keras"]
    assert record["bytes"] == (out / "baseline.keras").stat().st_size
    assert set(state["inputs"]) == {"model.factory"}

    # A truncated artifact is redone, not trusted.
    with open(out / "baseline.keras", "r+b") as f:
        f.truncate(1000)
    # A checkpoint a later stage left is dropped when an earlier stage is redone.
    (out / "checkpoints").mkdir(exist_ok=True)
    stale = out / "checkpoints" / "prune-epoch-0001.keras"
    stale.write_bytes(b"from the earlier baseline")
    run_recipe(load_recipe(tiny_recipe), out, until="baseline")
    log = (out / "stages.log").read_text()
    assert f"redo baseline: baseline.keras changed since it was written (1000 bytes, not " \
           f"{record['bytes']})" in log
    assert (out / "baseline.keras").stat().st_size > 1000 and not stale.exists()
    state = run_recipe(load_recipe(tiny_recipe), out, until="baseline")
    assert "skip baseline (finished earlier)" in (out / "stages.log").read_text()
    assert list(state["finished"]) == ["baseline"]  # --until of a finished stage: nothing more

    # Editing the factory's code: the folder's results are not this recipe's any more.
    (tmp_path / "models.py").write_text(FACTORY.replace("filters=4", "filters=8"))
    with pytest.raises(RecipeError, match=r"was run with other contents of model.factory "
                                          r"\(.*models.py\).*pass --restart"):
        run_recipe(load_recipe(tiny_recipe), out, until="baseline")
    run_recipe(load_recipe(tiny_recipe), out, until="baseline", restart=True)
    import keras

    assert keras.models.load_model(out / "baseline.keras").get_layer("conv").filters == 8


def test_item7_unreadable_state_is_named(tiny_recipe, tmp_path):
    from edgeprune.recipe import RecipeError, load_recipe, run_recipe

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "state.json").write_text("{not json")
    with pytest.raises(RecipeError, match=r"state.json: cannot read it .*pass --restart"):
        run_recipe(load_recipe(tiny_recipe), tmp_path / "run", until="baseline")


# Item 8: nothing is written outside the run folder.

def test_item8_names_and_paths_stay_inside(tiny_recipe, write_recipe, tmp_path, capsys):
    from edgeprune.recipe import RecipeError, load_recipe
    from edgeprune.recipe.runner import RunContext

    for name in ("../../x", "/abs/x", ".hidden", "a/b", "a\\\\b"):
        assert cli.main(["validate", tiny_recipe, "--set", f"name={name}"]) == 1
        assert "is not a name of letters" in capsys.readouterr().err
    # The default name, from the file name, is made one safe folder name too.
    assert load_recipe(write_recipe(TINY, "..yaml")).name == "yaml"
    assert load_recipe(write_recipe(TINY, "my run (v2).yaml")).name == "my_run__v2_"
    context = RunContext(load_recipe(tiny_recipe), tmp_path / "run", {"finished": {}})
    assert context.path("bench/local.json") == str(tmp_path / "run" / "bench" / "local.json")
    for escape in ("../outside.json", "/tmp/x.json", "bench/../../x"):
        with pytest.raises(RecipeError, match="outside the run folder"):
            context.path(escape)


# Item 10: host-key checks turned off are said every time.

def test_item10_check_host_key_false_warns_every_time(tiny_recipe, tmp_path):
    from edgeprune.recipe import load_recipe, run_recipe
    from edgeprune.recipe.loader import HostKeyWarning

    ssh = ["benchmark.targets=[{target: 'ssh://pi@192.0.2.1', check_host_key: false}]"]
    for _ in range(2):
        with pytest.warns(HostKeyWarning, match=r"benchmark.targets\[0\] \(ssh://pi@192.0.2.1\): "
                                                r"check_host_key: false turns SSH host-key "
                                                "checking off"):
            recipe = load_recipe(tiny_recipe, ssh)
    run_recipe(recipe, tmp_path / "run", until="baseline")  # and in the run's log
    assert "warning: " + str(tiny_recipe) + ": benchmark.targets[0] (ssh://pi@192.0.2.1): " \
           "check_host_key: false" in (tmp_path / "run" / "stages.log").read_text()
    status, _, err = run_cli("validate", tiny_recipe, "--set", ssh[0])
    assert status == 0 and "HostKeyWarning" in err and "check_host_key: false" in err
