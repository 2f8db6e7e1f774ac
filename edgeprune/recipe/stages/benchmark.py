"""The `benchmark` stage: every `.tflite` of the run on each target, through device_bench."""

import dataclasses
import re

from device_bench.fileio import atomic_write
from edgeprune.recipe.stages.registry import Stage, register_stage

LATENCY_FIELDS = ("p50_us", "min_us", "p90_us", "p99_us", "max_us", "mean_us", "count", "cv")


def run_benchmark(ctx):
    """Benchmarks every `.tflite` of the run on all targets at once (a device_bench fleet: the
    targets on this computer one after another, the others beside them); one device_bench JSON
    per target. A target that fails fails the stage, naming each failure, once the others' JSON
    files are written."""
    import device_bench  # its targets import paramiko, serial, tflite_micro: only when used

    files = [path for key, path in ctx.output_files("convert").items() if path.endswith(".tflite")]
    devices = [device_bench.Device(spec["target"], spec["target"],
                                   {key: value for key, value in spec.items() if key != "target"})
               for spec in ctx.recipe["benchmark"]["targets"]]
    fleet = device_bench.benchmark_fleet([ctx.path(f) for f in files], devices)
    outputs, latency, targets = {}, {}, {}
    for device in fleet.devices:
        target, result = device.target, device.result
        if result is None:
            continue
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
    if fleet.failed:  # the other targets' JSON files are written: their runs are not lost
        raise device_bench.BenchError("; ".join(f"{d.name} {d.status}: {d.error}"
                                                for d in fleet.failed))
    return {"outputs": outputs, "latency": latency, "targets": targets}


register_stage(Stage("benchmark", run_benchmark,
                     lambda r: bool(r.get("benchmark", {}).get("targets"))))
