"""The stages of a recipe run, each a thin layer over edgeprune's and device_bench's public API.

| stage       | runs when                   | calls                                                  |
|-------------|-----------------------------|--------------------------------------------------------|
| `baseline`  | always                      | the model source, `fit` when `training.epochs` > 0     |
| `allocate`  | `pruning.allocation`        | `ep.sensitivity_scan` + `ep.allocate`, `ep.uniform_allocation`, `ep.global_magnitude_allocation` |
| `prune`     | a `pruning` section         | `ep.prune_low_magnitude`, `fit` + `ep.UpdatePruningStep`; `ep.iterative_magnitude_pruning` (`pruning.iterative`) |
| `strip`     | a `pruning` section         | `ep.strip_pruning`, `ep.shrink` (`strip.shrink`)       |
| `qat`       | `quantize.aware_training`   | `ep.quantize_model` (sparsity kept), `fit`             |
| `convert`   | always                      | `ep.export_tflite`, `ep.size_report`, `ep.validate_tflite`, `ep.export_micro` |
| `benchmark` | a `benchmark` section       | `device_bench.benchmark`                               |
| `report`    | always                      | `edgeprune.recipe.report.write_report`                 |

A stage returns `{"outputs": {name: file}, "artifacts": [rows]}`; files are relative to the run
folder and written atomically. `needs(recipe)` lists the library functions a stage calls, so a
run stops before its first stage when this installation lacks one.

>>> [stage.name for stage in enabled_stages(load_recipe("recipes/quickstart.yaml"))]  # doctest: +SKIP
['baseline', 'prune', 'strip', 'convert', 'benchmark', 'report']
"""

import dataclasses
import fnmatch
import importlib
import json
import os
import re

import keras

import edgeprune as ep
from device_bench.fileio import atomic_write
from edgeprune.choose import iterative as imp_module
from edgeprune.sparsity import prune as prune_module
from edgeprune.recipe import report, training
from edgeprune.recipe.schema import RecipeError, did_you_mean
from edgeprune.sparsity.wrapper import leaf_layers
from edgeprune.sparsity.layer_registry import is_prunable

IMP_FOLDER = "imp"  # the rounds of `pruning.iterative`, inside the run folder


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    run: callable
    enabled: callable = lambda recipe: True
    needs: callable = lambda recipe: []


def has_feature(module, attribute):
    """True when `module.attribute` exists in this installation (a stage's library function)."""
    try:
        return hasattr(importlib.import_module(module), attribute)
    except ImportError:
        return False


def lacking(key, module, attribute, what):
    """The line a stage's `needs` reports for `module.attribute` when it is missing, else none."""
    if has_feature(module, attribute):
        return []
    return [f"{key}: needs {module}.{attribute} ({what}), which this installation does not "
            "provide"]


def supports_structure(structure):
    return structure in prune_module.STRUCTURES


# ---------------------------------------------------------------- baseline


def run_baseline(ctx):
    """Loads the model source, trains it densely when asked, and saves `baseline.keras`."""
    settings = ctx.recipe["training"]
    keras.utils.set_random_seed(ctx.recipe["seed"])
    if settings["epochs"]:
        model = ctx.train("baseline", lambda: training.compile_for(ctx.source_model(), settings),
                          settings["epochs"])
    else:
        model = ctx.source_model()
    return ctx.keras_result("baseline", model, "baseline.keras", "baseline (Keras, dense)")


# ---------------------------------------------------------------- allocate


def run_allocate(ctx):
    """Chooses per-layer sparsities for the baseline: `ep.sensitivity_scan` + `ep.allocate`,
    `ep.uniform_allocation` or `ep.global_magnitude_allocation`; writes `allocation.json`.

    The scan measures accuracy on training samples, so the test split stays unseen.
    """
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
        table = ep.sensitivity_scan(model, lambda m: training.accuracy(m, x, y), **options)
        atomic_write(ctx.path("sensitivity.json"), json.dumps(table.to_dict(), indent=2))
        outputs["sensitivity"] = "sensitivity.json"
        allocation = ep.allocate(table, spec["target"], budget=spec["budget"], skip=skip,
                                 max_sparsity=spec.get("max_sparsity"))
    atomic_write(ctx.path("allocation.json"), json.dumps(allocation.to_dict(), indent=2))
    return {"outputs": outputs}


def allocate_needs(recipe):
    method = recipe["pruning"]["allocation"]["method"]
    names = {"sensitivity": ["sensitivity_scan", "allocate"], "uniform": ["uniform_allocation"],
             "global_magnitude": ["global_magnitude_allocation"]}[method]
    return [line for name in names + ["Allocation"]
            for line in lacking("pruning.allocation", "edgeprune", name, "choosing sparsity")]


# ---------------------------------------------------------------- prune


def make_schedule(spec, steps_per_epoch, epochs, where="pruning.schedule", check_updates=True):
    """An `ep.PolynomialDecay` or `ep.ConstantSparsity` from a recipe schedule (epochs -> steps).

    With `check_updates`, raises `RecipeError` when no mask update would happen during the
    fine-tuning: a frequency longer than the schedule's span leaves the model dense without a
    word. (N:M masks ignore the schedule: they are set at step 1.)
    """
    scale = steps_per_epoch if spec["unit"] == "epochs" else 1
    end = spec.get("end", epochs if spec["unit"] == "epochs" else epochs * steps_per_epoch)
    begin, end = spec["begin"] * scale, end if end == -1 else end * scale
    last_step = epochs * steps_per_epoch if end == -1 else min(end, epochs * steps_per_epoch)
    if check_updates and begin + spec["frequency"] > last_step:
        raise RecipeError(
            f"{where}: the first mask update would be at step {begin + spec['frequency']} "
            f"(begin {begin} + frequency {spec['frequency']}), but pruning stops at step "
            f"{last_step} ({epochs} epochs of {steps_per_epoch} steps); lower frequency, begin "
            "earlier or fine-tune longer")
    if spec["kind"] == "constant":
        return ep.ConstantSparsity(spec["final_sparsity"], begin_step=begin, end_step=end,
                                   frequency=spec["frequency"])
    return ep.PolynomialDecay(spec["initial_sparsity"], spec["final_sparsity"], begin_step=begin,
                              end_step=end, power=spec["power"], frequency=spec["frequency"])


def pruning_passes(model, pruning):
    """`[(key path, settings, layer names)]`: each group's settings with the layers it matches
    first, then the section's own settings with every other prunable layer not in
    `skip_layers`."""
    names = [layer.name for layer in leaf_layers(model)]
    unknown = [n for n in pruning.get("skip_layers", []) if n not in names]
    if unknown:
        raise RecipeError(f"pruning.skip_layers: the model has no layer {unknown[0]!r}"
                          f"{did_you_mean(unknown[0], names)}; its layers: {', '.join(names)}")
    assigned, passes = set(pruning.get("skip_layers", [])), []
    for index, group in enumerate(pruning.get("groups", [])):
        matched = [n for n in names if n not in assigned
                   and any(fnmatch.fnmatchcase(n, pattern) for pattern in group["layers"])]
        if not matched:
            raise RecipeError(f"pruning.groups[{index}].layers: {group['layers']} match no layer "
                              f"not already taken; the model's layers: {', '.join(names)}")
        assigned.update(matched)
        if not group.get("skip"):
            passes.append((f"pruning.groups[{index}]", {**pruning, **group}, matched))
    prunable = {layer.name for layer in leaf_layers(model) if is_prunable(layer)}
    rest = [n for n in names if n not in assigned and n in prunable]
    if rest:
        passes.append(("pruning", pruning, rest))
    return passes


def apply_pruning(model, pruning, steps_per_epoch, epochs, allocation=None):
    """Wraps the model with `ep.prune_low_magnitude`: channels in one call over the whole graph,
    an `ep.Allocation` (as a dict) in one call with a schedule per layer, otherwise one call per
    settings group (already wrapped layers are left alone)."""
    if allocation is not None:
        template = make_schedule(pruning["schedule"], steps_per_epoch, epochs)
        options = {"block_size": tuple(pruning["block_size"])} if "block_size" in pruning else {}
        if pruning.get("policy") == "xnnpack":
            options["pruning_policy"] = ep.PruneForLatencyOnXNNPack()
        return ep.prune_low_magnitude(
            model, pruning_schedule=ep.Allocation.from_dict(allocation).schedules(template),
            pruning_scope=pruning["scope"], **options)
    if pruning["structure"] == "channels":
        return ep.prune_low_magnitude(
            model, structure="channels", criterion=pruning["criterion"],
            pruning_scope=pruning["scope"],
            round_to=pruning["round_to"], min_channels=pruning["min_channels"],
            skip_layers=pruning.get("skip_layers", []),
            pruning_schedule=make_schedule(pruning["schedule"], steps_per_epoch, epochs))
    for where, settings, chosen in pruning_passes(model, pruning):
        others = [layer.name for layer in leaf_layers(model) if layer.name not in chosen]
        options = {"pruning_schedule": make_schedule(settings["schedule"], steps_per_epoch,
                                                     epochs, f"{where}.schedule",
                                                     "sparsity_m_by_n" not in settings),
                   "pruning_scope": settings["scope"], "skip_layers": others}
        if "block_size" in settings:
            options["block_size"] = tuple(settings["block_size"])
        if "sparsity_m_by_n" in settings:
            options["sparsity_m_by_n"] = tuple(settings["sparsity_m_by_n"])
        if pruning.get("policy") == "xnnpack":
            options["pruning_policy"] = ep.PruneForLatencyOnXNNPack()
        model = ep.prune_low_magnitude(model, **options)
    return model


def finished_allocation(ctx):
    """The `allocation.json` of a finished allocate stage (as a dict), else None."""
    if "allocate" not in ctx.state["finished"]:
        return None
    with open(ctx.path(ctx.output("allocate", "allocation"))) as f:
        return json.load(f)


def run_prune(ctx):
    """Prunes while fine-tuning, with a checkpoint per epoch; saves `pruned.keras` (wrapped).
    With `pruning.iterative`, runs `run_iterative` instead."""
    pruning = ctx.recipe["pruning"]
    if "iterative" in pruning:
        return run_iterative(ctx)
    tune = pruning["fine_tune"]
    keras.utils.set_random_seed(ctx.recipe["seed"])
    allocation = finished_allocation(ctx)

    def start():
        base = ctx.load(ctx.output("baseline", "model"))
        pruned = apply_pruning(base, pruning, ctx.data.steps_per_epoch, tune["epochs"],
                               allocation)
        return training.compile_for(pruned, tune)

    model = ctx.train("prune", start, tune["epochs"], [ep.UpdatePruningStep()])
    return ctx.keras_result("prune", model, "pruned.keras", "pruned (Keras, wrapped)",
                            output_name="pruned")


def run_iterative(ctx):
    """Iterative magnitude pruning of the baseline with `ep.iterative_magnitude_pruning`.

    Every round, the dense round 0 included, trains `pruning.fine_tune.epochs` epochs with a
    fresh optimizer; `rewind_step` counts batches of round 0. Each finished round's model,
    sparsity and test accuracy stay in `imp/`, and a new run resumes after the last finished
    round (the round in progress is redone). Saves the last round as `pruned.keras` (plain).
    """
    pruning = ctx.recipe["pruning"]
    spec, tune = pruning["iterative"], pruning["fine_tune"]
    keras.utils.set_random_seed(ctx.recipe["seed"])
    check_rewind_step(spec["rewind_step"], tune["epochs"], ctx.data.steps_per_epoch)
    allocation = finished_allocation(ctx)
    target = (ep.Allocation.from_dict(allocation).sparsity if allocation
              else spec["final_sparsity"])
    rounds_done = finished_imp_rounds(ctx.path(IMP_FOLDER))
    if rounds_done:
        ctx.log(f"resume prune after IMP round {rounds_done - 1}")

    def train(model, callbacks):
        training.compile_for(model, tune)
        model.fit(**ctx.data.fit_arguments(), epochs=tune["epochs"], verbose=0,
                  callbacks=[*callbacks, *ctx.callbacks, training.ProgressBar("prune round")])

    result = ep.iterative_magnitude_pruning(
        ctx.load(ctx.output("baseline", "model")), train,
        lambda model: training.accuracy(model, ctx.data.test_x, ctx.data.test_y),
        ctx.path(IMP_FOLDER), rounds=spec["rounds"], final_sparsity=target,
        rewind_step=spec["rewind_step"], pruning_scope=pruning["scope"],
        skip_layers=pruning.get("skip_layers", []), progress=False)
    stage = ctx.keras_result("prune", result.model, "pruned.keras",
                             f"pruned (Keras, IMP round {spec['rounds']})", output_name="pruned")
    stage["outputs"]["imp"] = f"{IMP_FOLDER}/{imp_module.STATE_FILE}"
    return stage


def check_rewind_step(rewind_step, epochs, steps_per_epoch):
    """Raises `RecipeError` before any training when round 0 never reaches `rewind_step`."""
    if rewind_step is not None and rewind_step > epochs * steps_per_epoch:
        raise RecipeError(
            f"pruning.iterative.rewind_step: {rewind_step} is past the end of round 0 "
            f"({epochs} epochs of {steps_per_epoch} steps); rewind earlier or fine-tune longer")


def finished_imp_rounds(folder):
    """How many IMP rounds (the dense round 0 included) `folder` holds from an earlier run."""
    path = os.path.join(folder, imp_module.STATE_FILE)
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return len(json.load(f)["rounds"])


def prune_needs(recipe):
    if "iterative" in recipe["pruning"]:
        return lacking("pruning.iterative", "edgeprune", "iterative_magnitude_pruning",
                       "choosing sparsity")
    structure = recipe["pruning"]["structure"]
    if supports_structure(structure):
        return []
    return [f"pruning.structure: {structure!r} needs prune_low_magnitude(structure="
            f"{structure!r}) from structured pruning (edgeprune.structured), which this "
            "edgeprune does not provide"]


# ---------------------------------------------------------------- strip


def run_strip(ctx):
    """Bakes the masks in with `ep.strip_pruning`; with `strip.shrink`, `ep.shrink` removes the
    all-zero channels."""
    stripped = ep.strip_pruning(ctx.load(ctx.output("prune", "pruned")))
    result = ctx.keras_result("strip", stripped, "stripped.keras", "pruned + stripped (Keras)")
    if ctx.recipe["strip"]["shrink"]:
        shrunk = ctx.keras_result("strip", ep.shrink(stripped), "shrunk.keras",
                                  "shrunk (Keras)")
        result["outputs"]["model"] = shrunk["outputs"]["model"]
        result["artifacts"] += shrunk["artifacts"]
    return result


def strip_needs(recipe):
    if not recipe["strip"]["shrink"]:
        return []
    return lacking("strip.shrink", "edgeprune", "shrink", "structured pruning")


# ---------------------------------------------------------------- qat


def run_qat(ctx):
    """Quantization-aware fine-tuning with `ep.quantize_model` (zeros kept); saves `qat.keras`
    and, for conversion, `ep.strip_quantization` of it (kernels on the int8 grid)."""
    settings = ctx.recipe["quantize"]["aware_training"]
    keras.utils.set_random_seed(ctx.recipe["seed"])

    def start():
        return training.compile_for(ep.quantize_model(ctx.load(ctx.latest_model())), settings)

    model = ctx.train("qat", start, settings["epochs"])
    training.save_model_atomically(model, ctx.path("qat.keras"))
    result = ctx.keras_result("qat", ep.strip_quantization(model), "qat_stripped.keras",
                              "quantization-aware + stripped (Keras)")
    result["outputs"]["qat"] = "qat.keras"
    return result


def qat_needs(recipe):
    return lacking("quantize.aware_training", "edgeprune", "quantize_model",
                   "quantization-aware training")


# ---------------------------------------------------------------- convert


def run_convert(ctx):
    """Exports the final model (quantized as asked) and the dense baseline to `.tflite`."""
    quantize = ctx.recipe["quantize"]
    mode = None if quantize["mode"] == "none" else quantize["mode"]
    calibrated = mode in ("int8", "int16x8")
    final = ctx.load(ctx.latest_model())
    tflite = ep.export_tflite(
        final, ctx.path("model.tflite"), quantize=mode,
        representative_data=(ctx.data.calibration_samples(quantize["calibration_samples"])
                             if calibrated else None),
        int8_io=quantize["int8_io"], sparse_storage=quantize["sparse_storage"],
        num_calibration_samples=quantize["calibration_samples"])
    outputs, artifacts = {}, []
    export = ctx.recipe["export"]
    if export["baseline_tflite"] and ctx.latest_model() != ctx.output("baseline", "model"):
        # First, so that device_bench compares the final model against it.
        baseline = ctx.load(ctx.output("baseline", "model"))
        dense = ep.export_tflite(baseline, ctx.path("baseline.tflite"))
        outputs["baseline_tflite"] = "baseline.tflite"
        artifacts.append(ctx.tflite_row(dense, baseline, "baseline.tflite",
                                        "baseline .tflite (float32)"))
    outputs["tflite"] = "model.tflite"
    artifacts.append(ctx.tflite_row(tflite, final, "model.tflite",
                                    f"final .tflite ({mode or 'float32'})"))
    if export["c_array"]:
        micro = ep.export_micro(tflite, ctx.path("micro/model_data"),
                                array_name=export.get("array_name"))
        outputs["c_header"] = os.path.relpath(micro.header_path, ctx.out)
        outputs["c_source"] = os.path.relpath(micro.source_path, ctx.out)
    return {"outputs": outputs, "artifacts": artifacts}


def convert_needs(recipe):
    wanted = ["export_tflite", "size_report", "validate_tflite"]
    if recipe["export"]["c_array"]:
        wanted.append("export_micro")
    return [line for name in wanted
            for line in lacking("convert", "edgeprune", name, "quantization and export")]


# ---------------------------------------------------------------- benchmark


def run_benchmark(ctx):
    """Benchmarks every `.tflite` of the run on each target; one device_bench JSON per target."""
    import device_bench

    files = [path for key, path in ctx.output_files("convert").items() if path.endswith(".tflite")]
    outputs, latency = {}, {}
    for spec in ctx.recipe["benchmark"]["targets"]:
        target = spec["target"]
        flags = {key: value for key, value in spec.items() if key != "target"}
        result = device_bench.benchmark([ctx.path(f) for f in files], target=target, **flags)
        name = f"bench/{re.sub(r'[^A-Za-z0-9]+', '_', target).strip('_')}.json"
        atomic_write(ctx.path(name), json.dumps(result.to_dict(), indent=2))
        outputs[name] = name
        for file, model in zip(files, result.models):
            latency.setdefault(file, {})[target] = {
                "p50_us": model.latency.p50_us if model.latency else None,
                "micro": dataclasses.asdict(model.micro) if model.micro else None}
    return {"outputs": outputs, "latency": latency}


def benchmark_needs(recipe):
    return lacking("benchmark", "device_bench", "benchmark", "the benchmark harness")


# ---------------------------------------------------------------- report


def run_report(ctx):
    """Writes report.md and report.html (plots embedded) from the run's state."""
    formats = ctx.recipe["report"]["formats"]
    written = report.write_report([ctx.out], ctx.path("report"), formats=formats,
                                  title=ctx.recipe["report"].get("title"))
    return {"outputs": {os.path.basename(p): os.path.relpath(p, ctx.out) for p in written}}


STAGES = [
    Stage("baseline", run_baseline),
    Stage("allocate", run_allocate, lambda r: "allocation" in r.get("pruning", {}),
          allocate_needs),
    Stage("prune", run_prune, lambda r: "pruning" in r, prune_needs),
    Stage("strip", run_strip, lambda r: "pruning" in r, strip_needs),
    Stage("qat", run_qat, lambda r: r["quantize"]["aware_training"]["epochs"] > 0, qat_needs),
    Stage("convert", run_convert, needs=convert_needs),
    Stage("benchmark", run_benchmark, lambda r: bool(r.get("benchmark", {}).get("targets")),
          benchmark_needs),
    Stage("report", run_report),
]


def enabled_stages(recipe):
    return [stage for stage in STAGES if stage.enabled(recipe)]


def missing_features(recipe, until=None):
    """What this installation lacks to run `recipe` (up to stage `until`): one line per missing
    library function."""
    stages = enabled_stages(recipe)
    names = [stage.name for stage in stages]
    if until in names:
        stages = stages[:names.index(until) + 1]
    return [line for stage in stages for line in stage.needs(recipe)]
