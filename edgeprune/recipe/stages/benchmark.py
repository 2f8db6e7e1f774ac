"""The `benchmark` stage: every `.tflite` of the run on each target, through device_bench."""

import dataclasses
import re

from device_bench.fileio import atomic_write
from edgeprune.recipe.stages.registry import Stage, register_stage


def run_benchmark(ctx):
    """Benchmarks every `.tflite` of the run on each target; one device_bench JSON per target."""
    import device_bench  # its targets import paramiko, serial, tflite_micro: only when used

    files = [path for key, path in ctx.output_files("convert").items() if path.endswith(".tflite")]
    outputs, latency = {}, {}
    for spec in ctx.recipe["benchmark"]["targets"]:
        target = spec["target"]
        flags = {key: value for key, value in spec.items() if key != "target"}
        result = device_bench.benchmark([ctx.path(f) for f in files], target=target, **flags)
        name = f"bench/{re.sub(r'[^A-Za-z0-9]+', '_', target).strip('_')}.json"
        atomic_write(ctx.path(name), result.to_json())
        outputs[name] = name
        for file, model in zip(files, result.models):
            latency.setdefault(file, {})[target] = {
                "p50_us": model.latency.p50_us if model.latency else None,
                "micro": dataclasses.asdict(model.micro) if model.micro else None}
    return {"outputs": outputs, "latency": latency}


register_stage(Stage("benchmark", run_benchmark,
                     lambda r: bool(r.get("benchmark", {}).get("targets"))))
