"""device-bench's table says what was run and what each figure means; its JSON is not cluttered."""

import json

import device_bench
from device_bench import cli, report, results
from device_bench.schema import (BenchmarkResult, Comparison, LatencyStats, MicroReport,
                                 ModelResult, Ratio)
from device_bench.settings import RunSettings

FAST = ["--num_runs=10", "--min_secs=0", "--warmup_min_secs=0"]


def latency(p50, cv=0.01, count=50):
    return LatencyStats(count=count, min_us=p50 * 0.9, max_us=p50 * 1.5, mean_us=p50,
                        std_us=p50 * cv, p50_us=p50, p90_us=p50 * 1.1, p99_us=p50 * 1.2, cv=cv)


def model(graph, p50, cv=0.01, size=2048):
    result = ModelResult(graph=graph, size_bytes=size, init_us=100.0, first_inference_us=p50 * 2,
                         latency=latency(p50, cv), memory_delta_bytes=3 * 1024 * 1024,
                         memory_delta_kind="peak_rss")
    results.add_noise_warning(result)
    return result


def three_models(cv=0.01):
    models = [model("/m/dense.tflite", 4100.0, cv, size=12 * 1024 * 1024),
              model("/m/pruned.tflite", 1000.0, cv), model("/m/slow.tflite", 5330.0, cv)]
    comparisons = [Comparison(models[0].graph, models[1].graph, Ratio(50, 0.25, 0.24, 0.26)),
                   Comparison(models[0].graph, models[2].graph, Ratio(0, 1.3, None, None))]
    return BenchmarkResult("local", RunSettings(num_threads=2, num_runs=50).to_dict(), {},
                           models, comparisons, [w for m in models for w in m.warnings])


def test_table_has_settings_counts_extremes_and_directed_ratios():
    lines = report.format_table(three_models()).splitlines()
    assert lines[1] == ("settings: threads 2, XNNPACK on, timed: at least 50 runs and 1 s "
                        "(stop at 150 s), warmup: at least 1 run and 0.5 s")
    header = lines[2].split()
    assert header[:6] == ["model", "size", "runs", "init", "first", "min"] and "max" in header
    dense, pruned, slow = lines[3:6]
    assert dense.split()[1:4] == ["12.00", "MiB", "50"] and "3.690 ms" in dense  # min 0.9 * p50
    assert "6.150 ms" in dense                                                    # max 1.5 * p50
    assert pruned.endswith("4.00x faster [3.85-4.17]") and slow.endswith("1.30x slower")
    assert "3.00 MiB" in pruned
    assert any(line.startswith("memory: peak RSS growth") and "start-up" in line
               for line in lines)


def test_noise_warning_is_printed_once_for_all_noisy_models():
    result = three_models(cv=0.2)
    assert len(result.warnings) == 3  # the JSON keeps one per model
    warnings = [line for line in report.format_table(result).splitlines()
                if line.startswith("warning:")]
    assert warnings == [
        "warning: noisy latency (coefficient of variation above 10%): dense.tflite 20%, "
        f"pruned.tflite 20%, slow.tflite 20%; {results.NOISE_ADVICE}"]


def test_micro_line_gives_the_exact_arena_for_kTensorArenaSize():
    micro = MicroReport(ops=["FULLY_CONNECTED"], arena_used_bytes=2000, arena_min_bytes=1616,
                        verdict="runs on TFLite Micro; arena 1616 bytes")
    result = BenchmarkResult("micro", {}, {}, [ModelResult("/m/k.tflite", 1900, micro=micro)])
    assert "  kTensorArenaSize: 1616 bytes, the smallest arena that ran here" in \
        report.format_table(result)


def test_json_floats_are_rounded(models, tmp_path):
    assert json.loads(three_models().to_json())["models"][1]["latency"]["p90_us"] == 1100.0
    out = tmp_path / "r.json"
    assert cli.main([f"--graph={models['float']},{models['int8']}", *FAST,
                     f"--output_json={out}"]) == 0
    data = json.loads(out.read_text())
    figures = [*data["models"][0]["latency"].values(), data["comparisons"][0]["ratio"]["median"]]
    assert all(len(f"{v:.15g}".replace(".", "").lstrip("0")) <= 6 for v in figures
               if isinstance(v, float))


def test_first_model_memory_is_not_charged_with_the_runtime_start_up(models, fast_settings):
    """The same model twice: both figures are the model's own, not the runtime's start-up."""
    first, again = device_bench.benchmark([models["float"], models["float"]],
                                          **fast_settings).models
    assert abs(first.memory_delta_bytes - again.memory_delta_bytes) < 1024 * 1024
    assert first.memory_delta_kind in report.MEMORY_MEANINGS


def test_board_without_a_board_target_says_which_targets_take_it(models, capsys):
    assert cli.main([f"--graph={models['float']}", "--board=pico"]) == 2
    assert "board is for --target=micro or serial://PORT" in capsys.readouterr().err


def test_ratio_range_reads_in_the_same_direction():
    assert report.speed_text(Ratio(10, 1.25, 1.1, 1.4)) == "1.25x slower [1.10-1.40]"
    assert report.speed_text(Ratio(10, 0.5, 0.4, 0.8)) == "2.00x faster [1.25-2.50]"


def test_unknown_board_gets_a_did_you_mean(models, capsys):
    assert cli.main([f"--graph={models['int8']}", "--target=micro", "--board=nano33"]) == 2
    assert "unknown board 'nano33' (did you mean 'nano33ble'?)" in capsys.readouterr().err


def test_sparse_model_refusal_names_the_export_option(models):
    verdict = device_bench.benchmark(models["sparse"], target="micro").models[0].micro.verdict
    assert "sparse_storage=False" in verdict and "quantize.sparse_storage: false" in verdict
