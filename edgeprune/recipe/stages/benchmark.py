"""The `benchmark` stage: every `.tflite` of the run on each target, through device_bench."""

import dataclasses
import re

from device_bench.fileio import atomic_write
from edgeprune.recipe.stages.registry import Stage, register_stage

LATENCY_FIELDS = ("p50_us", "min_us", "p90_us", "p99_us", "max_us", "mean_us", "count", "cv")


def run_benchmark(ctx):
    """Benchmarks every `.tflite` of the run on each target; one device_bench JSON per target."""
    import device_bench  # its targets import paramiko, serial, tflite_micro: only when used

    files = [path for key, path in ctx.output_files("convert").items() if path.endswith(".tflite")]
    outputs, latency, targets = {}, {}, {}
    for spec in ctx.recipe["benchmark"]["targets"]:
        target = spec["target"]
        flags = {key: value for key, value in spec.items() if key != "target"}
        result = device_bench.benchmark([ctx.path(f) for f in files], target=target, **flags)
        name = f"bench/{re.sub(r'[^A-Za-z0-9]+', '_', target).strip('_')}.json"
        atomic_write(ctx.path(name), result.to_json())
        outputs[name] = name
        summary = result.to_dict()
        targets[target] = {"settings": summary.get("settings", {}),
                           "runtime": summary.get("runtime", {})}
        # Each model's latency spread, and its ratio to the first model (the dense baseline).
        ratios = {c["graph"]: c["ratio"] for c in summary.get("comparisons", [])}
        for file, model in zip(files, result.models):
            spread = dataclasses.asdict(model.latency) if model.latency else {}
            latency.setdefault(file, {})[target] = {
                **{key: spread.get(key) for key in LATENCY_FIELDS},
                "vs_first": ratios.get(ctx.path(file)),
                "micro": dataclasses.asdict(model.micro) if model.micro else None}
    return {"outputs": outputs, "latency": latency, "targets": targets}


register_stage(Stage("benchmark", run_benchmark,
                     lambda r: bool(r.get("benchmark", {}).get("targets"))))
