"""adb target: benchmark_model output in every known format, command lines, and a real phone
when EDGEPRUNE_ADB_SERIAL (and EDGEPRUNE_BENCHMARK_MODEL, the binary's path) are set."""

import os
import shlex
import sys

import pytest

import device_bench
from device_bench import benchmark_model_output
from device_bench.errors import BenchError
from device_bench.settings import RunSettings
from device_bench.targets.adb import shell_command

SAMPLES = os.path.join(os.path.dirname(__file__), "benchmark_model_outputs")


def sample(name):
    with open(os.path.join(SAMPLES, name)) as f:
        return f.read()


# (file, count, mean, std, p50, init, first, warmup mean, memory MB)
EXPECTED = [
    ("v2_15_info_prefix.txt", 86, 11633.9, 241, 11588, 48221, 21873, 12210.3, 44.8672),
    ("v2_4_plain.txt", 50, 249684, 1442, None, 16242, 360262, 304586, 138.809),
    ("v1_15_average_op_profiling.txt", 50, 79760.9, 1929, None, 38467, 83235, 80114.6, None),
    ("v1_12_no_stats.txt", 50, 137722, 896, None, 4452, 146161, 146161, None),
    ("android_logcat.txt", 25, 145528, 13583, 141253, 92318, 187533, 211669, 73.4102),
]


@pytest.mark.parametrize("name, count, mean, std, p50, init, first, warmup, memory_mb", EXPECTED)
def test_parses_every_known_format(name, count, mean, std, p50, init, first, warmup, memory_mb):
    run = benchmark_model_output.parse(sample(name))
    assert run.latency.count == count
    assert run.latency.mean_us == pytest.approx(mean)
    assert run.latency.std_us == pytest.approx(std)
    assert run.latency.p50_us == p50
    assert run.latency.cv == pytest.approx(std / mean)
    assert run.init_us == pytest.approx(init)
    assert run.first_inference_us == pytest.approx(first)
    assert run.warmup_mean_us == pytest.approx(warmup)
    memory = run.peak_memory_bytes or run.memory_overall_bytes
    assert memory == (None if memory_mb is None else round(memory_mb * (1 << 20)))


def test_op_profiling_timings_are_not_taken_for_the_run():
    run = benchmark_model_output.parse(sample("v1_15_average_op_profiling.txt"))
    assert run.latency.max_us == 88213  # the run's line, not "Timings (microseconds)" (88170)


def test_summary_line_alone_gives_mean():
    run = benchmark_model_output.parse(
        "tflite  : Average inference timings in us: Warmup: 91471, Init: 4108, Inference: 80660.1")
    assert run.latency.mean_us == 80660.1 and run.latency.count == 0 and run.init_us == 4108


def test_output_without_timings_is_an_error():
    with pytest.raises(BenchError, match="(?s)no timings.*Failed to mmap model"):
        benchmark_model_output.parse("STARTING!\nFailed to mmap model /data/local/tmp/x.tflite\n")


def test_shell_command_has_benchmark_model_flags():
    command = shell_command("/data/local/tmp/d/benchmark_model", "/data/local/tmp/d/0_m.tflite",
                            RunSettings(num_threads=4, num_runs=30, min_secs=2.0,
                                        use_xnnpack=False))
    assert shlex.split(command) == [
        "/data/local/tmp/d/benchmark_model", "--graph=/data/local/tmp/d/0_m.tflite",
        "--num_threads=4", "--warmup_runs=1", "--warmup_min_secs=0.5", "--num_runs=30",
        "--min_secs=2.0", "--max_secs=150.0", "--use_xnnpack=false"]


def test_shell_command_quotes_paths_pins_cores_and_sets_shapes():
    command = shell_command("/data/local/tmp/d/benchmark_model", "/data/local/tmp/d/0_my model's.tflite",
                            RunSettings(input_shapes={"a": [1, 10], "b": [1, 3, 3]}), "f0")
    words = shlex.split(command)
    assert words[:3] == ["taskset", "f0", "/data/local/tmp/d/benchmark_model"]
    assert "--graph=/data/local/tmp/d/0_my model's.tflite" in words
    assert words[-2:] == ["--input_layer=a,b", "--input_layer_shape=1,10:1,3,3"]


def test_missing_binary_is_explained(models):
    with pytest.raises(BenchError, match="--benchmark_binary=None is not a file"):
        device_bench.benchmark(models["float"], target="adb://emulator-5554")


def test_missing_adb_is_explained(models):
    with pytest.raises(BenchError, match="'/no/adb' not found.*platform-tools"):
        device_bench.benchmark(models["float"], target="adb://X", benchmark_binary=sys.executable,
                               adb="/no/adb")


@pytest.mark.skipif(not os.environ.get("EDGEPRUNE_ADB_SERIAL"),
                    reason="needs a phone: set EDGEPRUNE_ADB_SERIAL (and EDGEPRUNE_BENCHMARK_MODEL)")
def test_real_phone(models):
    binary = os.environ.get("EDGEPRUNE_BENCHMARK_MODEL") or pytest.fail(
        "EDGEPRUNE_ADB_SERIAL is set: also set EDGEPRUNE_BENCHMARK_MODEL to the path of LiteRT's "
        "android_aarch64 benchmark_model binary")
    result = device_bench.benchmark(
        [models["float"], models["int8"]], target="adb://" + os.environ["EDGEPRUNE_ADB_SERIAL"],
        benchmark_binary=binary, num_runs=20, min_secs=0.2)
    assert all(m.latency.count >= 20 and m.latency.mean_us > 0 for m in result.models)
    assert result.comparisons[0].ratio.median > 0


def stand_in_adb(tmp_path, fail_on=None):
    """An `adb` executable that logs its arguments and answers benchmark_model runs with a real
    output sample; it checks the push/run/cleanup sequence where no phone is attached."""
    log = tmp_path / "adb.log"
    script = tmp_path / "adb"
    script.write_text(f"""#!{sys.executable}
import json, sys
args = sys.argv[1:]
with open({str(log)!r}, "a") as f:
    f.write(json.dumps(args) + "\\n")
if {fail_on!r} and {fail_on!r} in " ".join(args):
    sys.exit("error: device offline")
if args[2] == "shell" and "--graph=" in args[3]:
    sys.stdout.write(open({os.path.join(SAMPLES, "v2_15_info_prefix.txt")!r}).read())
""")
    script.chmod(0o755)
    return str(script), log


def logged(log):
    import json
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_pushes_runs_parses_and_cleans_up(models, tmp_path):
    adb, log = stand_in_adb(tmp_path)
    result = device_bench.benchmark([models["float"], models["int8"]], target="adb://R5CT1",
                                    benchmark_binary=sys.executable, adb=adb, taskset_mask="f0")
    calls = logged(log)
    assert all(call[:2] == ["-s", "R5CT1"] for call in calls)
    verbs = [call[2] + (" " + call[3].split()[0] if call[2] == "shell" else "") for call in calls]
    assert verbs == ["shell mkdir", "push", "shell chmod", "push", "shell taskset", "push",
                     "shell taskset", "shell rm"]
    folder = shlex.split(calls[0][3])[-1]
    assert shlex.split(calls[-1][3]) == ["rm", "-rf", folder]
    assert result.models[0].latency.count == 86 and result.comparisons[0].ratio.pairs == 0
    assert any("not interleaved" in w for w in result.warnings)


def test_cleans_up_when_a_step_fails(models, tmp_path):
    adb, log = stand_in_adb(tmp_path, fail_on="chmod")
    with pytest.raises(BenchError, match="adb://R5CT1: `adb shell chmod.*device offline"):
        device_bench.benchmark(models["float"], target="adb://R5CT1",
                               benchmark_binary=sys.executable, adb=adb)
    assert logged(log)[-1][3].startswith("rm -rf /data/local/tmp/device_bench_")
