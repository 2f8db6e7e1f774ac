"""The `allocate` stage: per-layer sparsities for the baseline (`pruning.allocation`), or, for a
latency budget, per-channel-group ones planned with a latency model measured on the device."""

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
    outputs, record = {"allocation": "allocation.json"}, None
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

        latency_budget = isinstance(spec["budget"], dict)
        if latency_budget:
            options.update(structure="channels", criterion=pruning["criterion"])
        # The library's bar on a terminal; the lines above in logs and pipes.
        table = ep.sensitivity_scan(model, evaluate, progress=sys.stderr.isatty(), **options)
        atomic_write(ctx.path("sensitivity.json"), json.dumps(table.to_dict(), indent=2))
        outputs["sensitivity"] = "sensitivity.json"
        if latency_budget:
            budget = spec["budget"]
            convert = deployed_conversion(ctx)
            latency = measured_latency(ctx, model, budget, convert)
            atomic_write(ctx.path("latency_model.json"), json.dumps(latency.to_dict(), indent=1))
            outputs["latency_model"] = "latency_model.json"
            budget_ms = budget.get("latency_ms") or budget["latency_fraction"] * \
                latency.dense_measured_ms
            # A fraction of dense: each plan timed beside the dense model, as its fraction.
            relative = {"dense_ms": latency.dense_measured_ms} if "latency_ms" not in budget \
                else {}
            measure = ep.shrunk_latency(model, convert, target=budget["target"],
                                        num_threads=budget["num_threads"],
                                        criterion=pruning["criterion"], **relative,
                                        **budget["target_options"])

            def measure_and_log(plan):
                ms = measure(plan)
                ctx.log(f"latency plan: {plan.predicted_latency_ms:.3f} ms predicted, {ms:.3f} "
                        f"ms measured on {latency.target} (budget {budget_ms:.3f} ms)")
                return ms

            allocation = ep.plan_for_latency(
                table, budget_ms, latency, measure_and_log, tolerance=budget["tolerance"],
                max_rounds=budget["max_rounds"], skip=skip,
                max_sparsity=spec.get("max_sparsity"))
            record = {"target": latency.target, "precision": latency.precision,
                      "num_threads": latency.num_threads, "budget_ms": budget_ms,
                      "predicted_ms": allocation.predicted_latency_ms,
                      "planned_measured_ms": allocation.measured_latency_ms,
                      "rounds": allocation.latency_rounds,
                      "dense_measured_ms": latency.dense_measured_ms}
        else:
            allocation = ep.allocate(table, spec["target"], budget=spec["budget"], skip=skip,
                                     max_sparsity=spec.get("max_sparsity"))
    atomic_write(ctx.path("allocation.json"), json.dumps(allocation.to_dict(), indent=2))
    return {"outputs": outputs, **({"latency_budget": record} if record else {})}


def deployed_conversion(ctx):
    """`convert(model) -> .tflite bytes` at the precision the recipe deploys: int8 for
    `quantize.mode: int8` (with its calibration samples and I/O), else float32."""
    quantize = ctx.recipe["quantize"]
    if quantize["mode"] != "int8":
        return ep.export_tflite
    samples = ctx.data.calibration_samples(quantize["calibration_samples"])
    return lambda model: ep.export_tflite(model, quantize="int8", int8_io=quantize["int8_io"],
                                          representative_data=samples)


def measured_latency(ctx, model, budget, convert):
    """`ep.measure_latency_model` of the baseline on the budget's device, at the precision the
    recipe converts to, calibrated with the baseline converted that way; measurements are cached
    per device, as the library caches."""
    ctx.log(f"latency model: measuring the baseline's layers on {budget['target']}")
    return ep.measure_latency_model(
        model, target=budget["target"],
        precision="int8" if ctx.recipe["quantize"]["mode"] == "int8" else "float32",
        num_threads=budget["num_threads"], dense_tflite=convert(model),
        progress=sys.stderr.isatty(), **budget["target_options"])


register_stage(Stage("allocate", run_allocate, lambda r: "allocation" in r.get("pruning", {})))
