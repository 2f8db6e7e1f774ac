"""The `edgeprune` command as a newcomer meets it: instant help, quiet runs, a results summary."""

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np

import edgeprune as ep
from edgeprune import cli, tf_logs

from .conftest import FAST, QUICKSTART, REPO

# What TensorFlow, its converter and LiteRT print on their own (written independently of
# edgeprune.tf_logs, so the test does not grade the filter with itself).
TF_LOG_LINE = re.compile(
    r"^[IWEF]\d{4} \d+:\d+:\d+\.\d+\s+\d+ \S+:\d+\]|absl::InitializeLog|fully_quantize: |"
    r"XNNPACK delegate|To enable the following instructions|cuInit|oneDNN custom operations")


def environment(**extra):
    """This environment without the settings that would hide or show TensorFlow's lines."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", tf_logs.VERBOSE_ENV)}
    return {**env, **extra}


def edgeprune(*argv, timeout=600, **env):
    return subprocess.run([sys.executable, "-m", "edgeprune.cli", *argv], cwd=REPO,
                          env=environment(**env), capture_output=True, text=True,
                          timeout=timeout)


def tf_log_lines(text):
    return [line for line in text.splitlines() if TF_LOG_LINE.search(line)]


def test_help_version_recipes_and_tflite_inspect_import_no_tensorflow(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    ep.export_tflite(model, tmp_path / "m.tflite")
    code = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from edgeprune import cli
        results = {{}}
        for argv in ([], ["--help"], ["run", "--help"], ["--version"], ["recipes"],
                     ["inspect", {str(tmp_path / "m.tflite")!r}]):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    status = cli.main(argv)
                except SystemExit as exit:
                    status = exit.code
            results[" ".join(argv)] = [status, out.getvalue()]
        results["imported"] = sorted(m for m in ("tensorflow", "keras", "matplotlib")
                                     if m in sys.modules)
        print(json.dumps(results))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=environment(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert results.pop("imported") == []
    assert all(status == 0 for status, _ in results.values()), results
    bare, help_text = results[""][1], results["--help"][1]
    assert bare == help_text and "examples:" in help_text and "edgeprune recipes" in help_text
    assert "--until STAGE" in results["run --help"][1]
    assert results["--version"][1].startswith(f"edgeprune {ep.__version__} (keras ")
    listing = results["recipes"][1]
    assert "quickstart" in listing and "Digits CNN, gradual magnitude pruning to 80%" in listing
    assert all(name in listing for name in ("lottery_ticket", "micro_int8", "raspberry_pi"))
    rows = [line.split(None, 1) for line in listing.splitlines()
            if line and not line[0].isspace() and not line.startswith("run one")]
    assert len(rows) >= 9 and all(len(row) == 2 for row in rows), listing  # a description each
    assert "not valid YAML" not in listing
    inspected = results[f"inspect {tmp_path / 'm.tflite'}"][1]
    assert "operators: FULLY_CONNECTED" in inspected and "(1, 4) float32" in inspected


def test_every_argument_is_described_and_until_takes_the_stage_names():
    from edgeprune.recipe.stages import stage_names

    parser = cli._parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in subcommands.choices.items():
        for action in command._actions:
            assert action.help, f"edgeprune {name} {action.dest}: no help text"
    run = subcommands.choices["run"]
    until = next(action for action in run._actions if action.dest == "until")
    assert until.choices == stage_names() and "report" in until.choices
    assert cli.main(["recipes"]) == 0


def test_inspect_a_tflite_as_json(tmp_path, capsys):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, name="hidden"),
                              keras.layers.Dense(2)])
    kernel = model.layers[0].kernel
    kernel.assign(np.where(np.arange(8)[:, None] < 6, 0.0, 1.0) * np.ones((8, 16), "float32"))
    ep.export_tflite(model, tmp_path / "m.tflite")
    assert cli.main(["inspect", str(tmp_path / "m.tflite"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["operators"] == {"FULLY_CONNECTED": 2}
    hidden = next(k for k in stats["kernels"] if k["shape"] == [16, 8])
    assert hidden["sparsity"] == 0.75 and stats["inputs"][0]["shape"] == [1, 8]
    (tmp_path / "bad.tflite").write_bytes(b"not a model")
    assert cli.main(["inspect", str(tmp_path / "bad.tflite")]) == 1
    assert "bad.tflite" in capsys.readouterr().err


def test_quickstart_run_prints_progress_and_a_summary_and_no_tensorflow_log_line(tmp_path):
    overrides = [arg for override in FAST for arg in ("--set", override)]
    result = edgeprune("run", QUICKSTART, "--out", str(tmp_path / "run"), *overrides)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert tf_log_lines(output) == []
    # One line per epoch, with the metrics on the test split.
    epochs = [line for line in result.stdout.splitlines() if " epoch " in line]
    assert len(epochs) == 3 + 2 and all("test accuracy" in line for line in epochs)
    summary = result.stdout[result.stdout.index("results of quickstart"):]
    assert re.search(r"accuracy +\d+\.\d\d% +\d+\.\d\d% +[+-]\d+\.\d\d points", summary)
    assert re.search(r"size \(gzip\) .* \d+\.\d\dx smaller", summary)
    assert re.search(r"p50 latency \(local\) .* \d+\.\d\dx (faster|slower)", summary)
    assert f"report: {tmp_path / 'run' / 'report' / 'report.html'}" in summary


def test_verbose_shows_tensorflows_lines(tmp_path):
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "m.keras")
    quiet = edgeprune("inspect", str(tmp_path / "m.keras"))
    verbose = edgeprune("inspect", str(tmp_path / "m.keras"), "--verbose")
    assert quiet.returncode == verbose.returncode == 0, quiet.stderr + verbose.stderr
    assert tf_log_lines(quiet.stdout + quiet.stderr) == []
    assert len(tf_log_lines(verbose.stderr)) >= 3


def test_validate_lists_a_missing_model_file_with_the_schema_errors(write_recipe, capsys):
    """README: errors name the file, the key path, what is allowed and the closest match, all at
    once, files included."""
    path = write_recipe("""
        model: {keras_file: models/net.keras}
        pruning:
          fine_tune: {epohcs: 2}
        quantize: {mode: int9}
    """)
    assert cli.main(["validate", path]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"{path}: invalid recipe"
    assert lines[1].startswith("  pruning.fine_tune.epohcs: unknown key; allowed: epochs")
    assert lines[2].startswith("  quantize.mode: 'int9' is not allowed")
    assert lines[3].startswith("  model.keras_file: file not found: models/net.keras (looked for ")
