"""The quickstart recipe end to end through the CLI, and resuming an interrupted run."""

import json
import os
import re

import keras
import numpy as np
import pytest

import edgeprune as ep

from edgeprune import cli
from edgeprune.sparsity.wrapper import pruning_wrappers
from edgeprune.recipe import load_recipe, run_recipe

from .conftest import FAST, QUICKSTART


def cli_run(out, *extra):
    argv = ["run", QUICKSTART, "--out", str(out)]
    for override in FAST:
        argv += ["--set", override]
    return cli.main(argv + list(extra))


def log_lines(out):
    with open(os.path.join(out, "stages.log")) as f:
        # "2026-...Z finish prune (3.1 s)" -> "finish prune"
        return [re.sub(r" \(\d+\.\d s\)$", "", line.split(" ", 1)[1].strip()) for line in f]


def test_quickstart_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_run(out) == 0
    state = json.loads((out / "state.json").read_text())
    assert list(state["finished"]) == ["baseline", "prune", "strip", "convert", "benchmark",
                                       "report"]
    rows = {row["label"]: row for record in state["finished"].values()
            for row in record.get("artifacts", [])}
    baseline, stripped = rows["baseline (Keras, dense)"], rows["pruned + stripped (Keras)"]
    final = rows["final .tflite (int8)"]
    assert baseline["accuracy"] > 0.8
    assert final["accuracy"] > baseline["accuracy"] - 0.1
    # 80% of every pruned kernel is zero; the skipped classifier stays dense.
    sparsity = {layer["name"]: layer["kernel_sparsity"] for layer in stripped["layers"]}
    assert all(abs(sparsity[name] - 0.8) < 0.01 for name in ("conv1", "conv2", "fc"))
    assert sparsity["classifier"] == 0
    assert stripped["gzip_bytes"] < baseline["gzip_bytes"] / 2
    assert final["gzip_bytes"] < rows["baseline .tflite (float32)"]["gzip_bytes"] / 2
    latency = state["finished"]["benchmark"]["latency"]
    assert latency["model.tflite"]["local"]["p50_us"] > 0
    bench = json.loads((out / "bench" / "local.json").read_text())
    assert [os.path.basename(m["graph"]) for m in bench["models"]] == ["baseline.tflite",
                                                                        "model.tflite"]
    page = (out / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "final .tflite (int8)" in page
    assert "| final .tflite (int8) |" in (out / "report" / "report.md").read_text()
    assert f"report: {out / 'report' / 'report.html'}" in capsys.readouterr().out

    # `report` redraws from the run folder alone; `inspect` reads the stripped model.
    assert cli.main(["report", str(out), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.html").stat().st_size > 10_000
    capsys.readouterr()
    assert cli.main(["inspect", str(out / "stripped.keras"), "--json"]) == 0
    inspected = json.loads(capsys.readouterr().out)
    assert inspected["nonzero_params"] == stripped["nonzero_params"]
    assert inspected["macs"] == stripped["macs"] > 0


class InterruptPruning(keras.callbacks.Callback):
    """Raises KeyboardInterrupt (what Ctrl-C does) as the pruned model's `epoch` begins."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch and pruning_wrappers(self.model):
            raise KeyboardInterrupt


class EpochRecorder(keras.callbacks.Callback):
    """Records (stage, epoch) of every epoch trained, the stage told by the model's wrappers."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        if pruning_wrappers(self.model):
            stage = "prune"
        elif any(isinstance(layer, ep.QuantizeWrapper)
                 for layer in self.model._flatten_layers(include_self=False)):
            stage = "qat"
        else:
            stage = "baseline"
        self.epochs.append((stage, epoch))


def test_resume_after_ctrl_c_in_training_redoes_nothing_finished(tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe(QUICKSTART, FAST + ["pruning.fine_tune.epochs=3",
                                             "quantize.aware_training.epochs=1",
                                             "quantize.aware_training.learning_rate=0.0001"])
    first = EpochRecorder()
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, out, callbacks=[first, InterruptPruning(epoch=2)])
    assert first.epochs == [("baseline", 0), ("baseline", 1), ("baseline", 2),
                            ("prune", 0), ("prune", 1), ("prune", 2)]
    assert os.listdir(out / "checkpoints") == ["prune-epoch-0002.keras"]
    baseline_mtime = os.stat(out / "baseline.keras").st_mtime_ns

    # Second run stops after strip; third finishes. Nothing finished is done again.
    second = EpochRecorder()
    run_recipe(recipe, out, until="strip", callbacks=[second])
    assert second.epochs == [("prune", 2)]  # only the epoch that was interrupted
    assert os.stat(out / "baseline.keras").st_mtime_ns == baseline_mtime
    assert not os.listdir(out / "checkpoints")
    stripped_mtime = os.stat(out / "stripped.keras").st_mtime_ns

    third = EpochRecorder()
    state = run_recipe(recipe, out, callbacks=[third])
    assert third.epochs == [("qat", 0)]
    assert os.stat(out / "stripped.keras").st_mtime_ns == stripped_mtime
    assert list(state["finished"])[-1] == "report"
    assert log_lines(out) == [
        "start baseline", "finish baseline", "start prune", "interrupted prune",
        "skip baseline (finished earlier)", "start prune",
        "resume prune from checkpoint after epoch 2", "finish prune", "start strip",
        "finish strip",
        "skip baseline (finished earlier)", "skip prune (finished earlier)",
        "skip strip (finished earlier)", "start qat", "finish qat", "start convert",
        "finish convert", "start benchmark", "finish benchmark", "start report", "finish report"]
    # Quantization-aware training kept every zero of the pruned model (int8 rounding may add some).
    pruned = keras.models.load_model(out / "stripped.keras")
    quantized = keras.models.load_model(out / "qat_stripped.keras")
    for name in ("conv1", "conv2", "fc"):
        zeros = pruned.get_layer(name).kernel.numpy() == 0
        assert zeros.mean() > 0.79
        assert np.all(quantized.get_layer(name).kernel.numpy()[zeros] == 0)


def test_a_folder_of_other_settings_is_not_resumed(tmp_path):
    out = tmp_path / "run"
    run_recipe(load_recipe(QUICKSTART, FAST + ["training.epochs=1"]), out, until="baseline")
    with pytest.raises(Exception, match="holds a run of different settings"):
        run_recipe(load_recipe(QUICKSTART, FAST), out)
