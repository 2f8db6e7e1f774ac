"""Turns the runner's raw samples into a BenchmarkResult (statistics, ratios, noise warnings)."""

from device_bench import stats
from device_bench.schema import BenchmarkResult, Comparison, ModelResult


def model_result(raw, graph_name):
    """ModelResult from one model entry of runner.py's output."""
    latency = stats.summarize(raw["samples_us"])
    warmup = raw["warmup_us"]
    result = ModelResult(
        graph=graph_name, size_bytes=raw["size_bytes"], init_us=raw["init_us"],
        first_inference_us=raw["first_inference_us"],
        warmup_mean_us=sum(warmup) / len(warmup) if warmup else None, warmup_count=len(warmup),
        latency=latency, memory_delta_bytes=raw["memory_delta_bytes"],
        memory_delta_kind=raw["memory_delta_kind"], inputs=raw["inputs"])
    add_noise_warning(result)
    return result


NOISE_ADVICE = ("the machine was too noisy to trust these figures; close other programs, pin the "
                "process to a core, raise --min_secs, or compare models in one interleaved run")


def noise_warning(result):
    return (f"{result.graph}: latency varied by {result.latency.cv:.0%} (coefficient of variation "
            f"above {stats.NOISY_CV:.0%}): {NOISE_ADVICE}")


def add_noise_warning(result):
    if result.latency is not None and stats.is_noisy(result.latency):
        result.warnings.append(noise_warning(result))


def from_runner(raw, target, settings, graphs):
    """BenchmarkResult from runner.py's output for `graphs` (the user's paths, in order)."""
    models = [model_result(entry, graph) for entry, graph in zip(raw["models"], graphs)]
    comparisons = [
        Comparison(baseline=graphs[0], graph=graph,
                   ratio=stats.paired_ratio(raw["models"][0]["samples_us"], entry["samples_us"]))
        for entry, graph in zip(raw["models"][1:], graphs[1:])]
    return BenchmarkResult(target=target, settings=settings.to_dict(), runtime=raw["runtime"],
                           models=models, comparisons=comparisons,
                           warnings=[w for m in models for w in m.warnings])
