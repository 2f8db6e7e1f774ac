"""device_bench must import and run where TensorFlow is not installed (a Raspberry Pi)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = ["device_bench", "device_bench.cli", "device_bench.targets.local",
           "device_bench.targets.ssh", "device_bench.targets.adb", "device_bench.targets.micro",
           "device_bench.targets.serial", "device_bench.serial_protocol", "device_bench.boards",
           "device_bench.benchmark_model_output", "device_bench.report", "device_bench.runner",
           "device_bench.fleet", "device_bench.plot", "device_bench.yamlfile"]


def python(args, env=None, **kwargs):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, **kwargs)


def test_importing_every_module_loads_no_tensorflow():
    code = ("import sys, importlib\n"
            f"for name in {MODULES!r}: importlib.import_module(name)\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'paramiko', 'yaml', 'tflite_micro', "
            "'serial') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    done = python(["-c", code])
    assert done.returncode == 0, done.stderr


def test_benchmarks_with_tensorflow_blocked(models, tmp_path):
    shadow = tmp_path / "shadow"
    for package in ("tensorflow", "keras"):
        (shadow / package).mkdir(parents=True)
        (shadow / package / "__init__.py").write_text(
            f"raise ImportError('{package} is blocked in this test')\n")
    env = {**os.environ, "PYTHONPATH": f"{shadow}{os.pathsep}{ROOT}"}
    assert python(["-c", "import tensorflow"], env=env).returncode != 0  # the block works
    out = tmp_path / "result.json"
    local = python(["-m", "device_bench", f"--graph={models['float']},{models['int8']}",
                    "--num_runs=10", "--min_secs=0", "--warmup_min_secs=0",
                    f"--output_json={out}"], env=env)
    assert local.returncode == 0, local.stderr
    result = json.loads(out.read_text())
    assert [m["latency"]["count"] for m in result["models"]] == [10, 10]
    micro = python(["-m", "device_bench.cli", f"--graph={models['int8']}", "--target=micro",
                    "--board=nano33ble"], env=env)
    assert micro.returncode == 0 and "fits nano33ble" in micro.stdout, micro.stderr
