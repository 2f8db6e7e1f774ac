"""`edgeprune inspect` (layers, parameters, sparsity, MACs) and `edgeprune report` of partial runs."""

import keras
import numpy as np

from edgeprune import cli


def test_inspect_prints_layers_sparsity_and_macs(tmp_path, capsys):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"),
                              keras.layers.Flatten(name="flatten"),
                              keras.layers.Dense(10, name="head")])
    kernel = model.get_layer("head").kernel
    kernel.assign(np.where(np.arange(kernel.shape[0])[:, None] % 2 == 0, 0.0, 1.0)
                  * np.ones(kernel.shape, "float32"))  # half the rows zero
    model.save(tmp_path / "m.keras")
    assert cli.main(["inspect", str(tmp_path / "m.keras")]) == 0
    lines = capsys.readouterr().out.splitlines()
    conv = next(line for line in lines if line.startswith("conv "))
    head = next(line for line in lines if line.startswith("head "))
    assert conv.split()[-3:] == ["40", "0.0%", "1,296"]      # 3*3*1*4 + 4; 6*6 positions * 36
    assert head.split()[-3:] == ["1,450", "50.0%", "1,440"]  # 144*10 + 10
    # 1490 parameters - 720 zero kernel rows - 14 zero-initialised biases; 1296 + 1440 / 2
    assert lines[-1] == "nonzero parameters 756; MACs with zero weights skipped 2,016"
    assert cli.main(["inspect", str(tmp_path / "missing.keras")]) == 1
    assert "missing.keras: no such file" in capsys.readouterr().err


def test_report_of_a_run_stopped_before_convert(tmp_path, capsys):
    from edgeprune.recipe import load_recipe, run_recipe

    from .conftest import QUICKSTART

    out = tmp_path / "run"
    run_recipe(load_recipe(QUICKSTART, ["training.epochs=0"]), out, until="baseline")
    assert cli.main(["report", str(out)]) == 0
    markdown = (out / "report" / "report.md").read_text()
    assert "| baseline (Keras, dense) |" in markdown and "tradeoff.png" not in markdown
    # An untrained dense model: no sparsity chart (it would be empty), no latency column.
    assert "sparsity_0.png" not in markdown and "latency" not in markdown
    assert (out / "report" / "report.html").read_text().count("data:image/png;base64,") == 0
