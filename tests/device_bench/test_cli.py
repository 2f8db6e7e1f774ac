import csv
import json
import subprocess
import sys

import pytest

from device_bench import cli
from device_bench.errors import BenchError
from device_bench.schema import SCHEMA_VERSION, BenchmarkResult

FAST = ["--num_runs=10", "--min_secs=0", "--warmup_min_secs=0"]


def test_table_json_and_csv(models, tmp_path, capsys):
    json_path, csv_path = tmp_path / "out" / "r.json", tmp_path / "r.csv"
    code = cli.main([f"--graph={models['float']}", f"--graph={models['int8']},{models['uint8']}",
                     *FAST, "--num_threads=1", "--use_xnnpack=false",
                     f"--output_json={json_path}", f"--output_csv={csv_path}"])
    assert code == 0
    table = capsys.readouterr().out
    assert "float.tflite" in table and "uint8.tflite" in table and "vs first" in table
    data = json.loads(json_path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["settings"]["num_threads"] == 1 and data["settings"]["use_xnnpack"] is False
    assert BenchmarkResult.from_dict(data).models[2].graph == models["uint8"]
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["graph"] for r in rows] == [models["float"], models["int8"], models["uint8"]]
    assert rows[0]["ratio_vs_baseline"] == "" and float(rows[1]["ratio_vs_baseline"]) > 0
    assert int(rows[0]["count"]) == 10


def test_input_layer_shape_reaches_the_runner(models, tmp_path):
    from device_bench.api import benchmark

    name = benchmark(models["dynamic"], num_runs=1, min_secs=0).models[0].inputs[0]["name"]
    out = tmp_path / "r.json"
    assert cli.main([f"--graph={models['dynamic']}", *FAST, f"--input_layer={name}",
                     "--input_layer_shape=3,4,5", f"--output_json={out}"]) == 0
    assert json.loads(out.read_text())["models"][0]["inputs"][0]["shape"] == [3, 4, 5]


@pytest.mark.parametrize("flags, message", [
    (["--input_layer=a,b", "--input_layer_shape=1,2"], "names 2 inputs but"),
    (["--input_layer=a", "--input_layer_shape=1,x"], "not a list of integer shapes"),
    (["--num_runs=0"], "--num_runs must be at least 1"),
    (["--max_secs=0"], "--max_secs must be above 0"),
    (["--board=pico"], "board do not apply to the local target"),
    (["--target=ftp://x"], "is not a target"),
    (["--target=micro", "--board=uno"], "unknown board 'uno'"),
    (["--target=micro", "--boards_file=b.yaml"], "--boards_file given without --board"),
])
def test_bad_flags_get_clear_errors(models, capsys, flags, message):
    assert cli.main([f"--graph={models['float']}", *flags]) == 2
    assert message in capsys.readouterr().err


def test_bad_bool_is_rejected_by_the_parser(models):
    done = subprocess.run([sys.executable, "-m", "device_bench.cli", f"--graph={models['float']}",
                           "--use_xnnpack=maybe"], capture_output=True, text=True)
    assert done.returncode == 2 and "expected true or false, got 'maybe'" in done.stderr


def test_parse_input_shapes():
    assert cli.parse_input_shapes("a,b", "1,2:3") == {"a": [1, 2], "b": [3]}
    assert cli.parse_input_shapes("", "") == {}
    with pytest.raises(BenchError):
        cli.parse_input_shapes("a", "")
