"""The micro target on the real TFLite Micro interpreter (tflite-micro package)."""

import json
import os
import subprocess
import sys

import pytest

import device_bench
from device_bench.targets.micro import PROBE


def micro(path, **options):
    return device_bench.benchmark(path, target="micro", **options).models[0].micro


def arena_check(path, sizes):
    """Whether the model runs with each arena size, plus print_allocations' total, in a child."""
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import micro_probe as p, numpy as np; "
        "from tflite_micro.python.tflite_micro import runtime; "
        "data = open(sys.argv[2], 'rb').read(); sizes = json.loads(sys.argv[3]); "
        "print(json.dumps([p.arena_works(runtime, np, data, s, 1) for s in sizes]))")
    done = subprocess.run([sys.executable, "-c", script, os.path.dirname(PROBE), path,
                           json.dumps(sizes)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", ["int8", "uint8", "float"])
def test_smallest_arena_is_really_the_smallest(models, name):
    report = micro(models[name])
    assert report.arena_used_bytes > 0 and report.arena_min_bytes > 0
    assert report.ops and "FULLY_CONNECTED" in report.ops
    assert arena_check(models[name], [report.arena_min_bytes, report.arena_min_bytes - 16]) == [
        True, False]


def test_arena_used_comes_from_print_allocations(models):
    done = subprocess.run([sys.executable, PROBE], input=json.dumps({"graph": models["int8"]}),
                          capture_output=True, text=True, check=True)
    probe = json.loads(done.stdout)
    total_line = next(line for line in probe["allocations"] if "Arena allocation total" in line)
    assert str(probe["arena_used_bytes"]) in total_line


def test_two_input_model_runs(models):
    assert micro(models["two_inputs"]).arena_min_bytes > 0


def test_float_model_gets_int8_advice(models):
    notes = micro(models["float"]).notes
    assert any("float32 ops (FULLY_CONNECTED x2)" in n and "int8" in n for n in notes)
    assert micro(models["int8"]).notes == []


def test_sparse_model_is_explained(models):
    report = micro(models["sparse"])
    assert report.fits is False and report.arena_min_bytes is None
    assert "DENSIFY" in report.verdict and "EXPERIMENTAL_SPARSITY" in report.verdict


def test_dynamic_model_is_explained(models):
    report = micro(models["dynamic"])
    assert report.fits is False
    assert "dynamic dimensions [-1, -1, 5]" in report.verdict
    assert "REDUCE_PROD have no TFLite Micro kernel" in report.verdict


def test_fits_builtin_board(models):
    report = micro(models["int8"], board="nano33ble")
    assert report.fits is True and report.board == "nano33ble"
    assert report.flash.needed_bytes == os.path.getsize(models["int8"])
    assert report.flash.available_bytes == 1024 * 1024
    assert report.ram.needed_bytes == report.arena_min_bytes
    assert report.ram.margin_bytes == 256 * 1024 - report.arena_min_bytes
    assert report.verdict.startswith("fits nano33ble")


def test_does_not_fit_user_board_says_by_how_much(models, tmp_path):
    boards = tmp_path / "boards.yaml"
    boards.write_text("boards:\n  tiny:\n    flash: 1KB\n    ram: 4KB\n    ram_reserved: 3KB\n")
    report = micro(models["int8"], board="tiny", boards_file=str(boards))
    assert report.fits is False
    assert report.flash.fits is False and report.flash.margin_bytes < 0
    assert report.ram.available_bytes == 1024 and report.ram.fits is False
    over = -report.flash.margin_bytes / 1024
    assert f"({over:.1f} KiB over)" in report.verdict and "does NOT fit tiny" in report.verdict


def test_cli_exit_status_tells_whether_it_fits(models):
    def run(*flags):
        return subprocess.run([sys.executable, "-m", "device_bench.cli", "--target=micro",
                               *flags], capture_output=True, text=True)
    fits = run(f"--graph={models['int8']}", "--board=pico")
    assert fits.returncode == 0 and "fits pico" in fits.stdout
    cannot = run(f"--graph={models['sparse']}")
    assert cannot.returncode == 1 and "DENSIFY" in cannot.stdout
