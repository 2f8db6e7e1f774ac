"""The `allocate` stage: per-layer sparsities for the baseline (`pruning.allocation`)."""

import json
import sys
import time

import edgeprune as ep
from device_bench.fileio import atomic_write
from edgeprune.recipe.stages.registry import Stage, register_stage


def run_allocate(ctx):
    """Chooses per-layer sparsities for the baseline: `ep.sensitivity_scan` + `ep.allocate`,
    `ep.uniform_allocation` or `ep.global_magnitude_allocation`; writes `allocation.json`.

    The scan measures accuracy on training samples, so the test split stays unseen.
    """
    from edgeprune.choose.sensitivity import DEFAULT_SPARSITIES
    from edgeprune.recipe import training

    pruning = ctx.recipe["pruning"]
    spec = pruning["allocation"]
    model = ctx.load(ctx.output("baseline", "model"))
    skip = spec.get("skip", [])
    outputs = {"allocation": "allocation.json"}
    if spec["method"] == "uniform":
        allocation = ep.uniform_allocation(model, spec["target"], skip=skip)
    elif spec["method"] == "global_magnitude":
        allocation = ep.global_magnitude_allocation(model, spec["target"], skip=skip)
    else:
        x, y = ctx.data.training_samples(spec["scan_samples"])
        options = {"sparsities": tuple(spec["sparsities"])} if "sparsities" in spec else {}
        if "block_size" in pruning:
            options["block_size"] = tuple(pruning["block_size"])
        levels = len(options.get("sparsities", DEFAULT_SPARSITIES))
        calls, began = [0], time.perf_counter()

        def evaluate(m):  # the unpruned copy first, then each layer at each level
            metric = training.accuracy(m, x, y)
            calls[0] += 1
            if calls[0] > 1 and (calls[0] - 1) % levels == 0:
                done = (calls[0] - 1) // levels
                ctx.log(f"sensitivity scan: {done} layer{'s' if done > 1 else ''} scored at "
                        f"{levels} levels ({time.perf_counter() - began:.1f} s)")
            return metric

        # The library's bar on a terminal; the lines above in logs and pipes.
        table = ep.sensitivity_scan(model, evaluate, progress=sys.stderr.isatty(), **options)
        atomic_write(ctx.path("sensitivity.json"), json.dumps(table.to_dict(), indent=2))
        outputs["sensitivity"] = "sensitivity.json"
        allocation = ep.allocate(table, spec["target"], budget=spec["budget"], skip=skip,
                                 max_sparsity=spec.get("max_sparsity"))
    atomic_write(ctx.path("allocation.json"), json.dumps(allocation.to_dict(), indent=2))
    return {"outputs": outputs}


register_stage(Stage("allocate", run_allocate, lambda r: "allocation" in r.get("pruning", {})))
