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
