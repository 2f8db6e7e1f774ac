"""The `prune` stage: `ep.prune_low_magnitude` while fine-tuning (or iterative magnitude pruning
with `pruning.iterative`), and the translation of a recipe's `pruning` section into those calls."""

import fnmatch
import json
import os

import edgeprune as ep
from edgeprune.recipe.schema import RecipeError, did_you_mean
from edgeprune.recipe.stages.registry import Stage, register_stage

# Keras, TensorFlow and the modules that import them are imported inside the functions, so that
# registering the stage (e.g. for `edgeprune --help`) stays instant.

IMP_FOLDER = "imp"  # the rounds of `pruning.iterative`, inside the run folder


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
    from edgeprune.sparsity.layer_registry import is_prunable
    from edgeprune.sparsity.wrapper import leaf_layers

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
    """Wraps the model with `ep.prune_low_magnitude`: an `ep.Allocation` (as a dict) in one call
    with a schedule per layer; without groups, one call over the whole model (a granularity that
    ranks across the graph, as channels do, needs it); otherwise one call per settings group
    (already wrapped layers are left alone)."""
    from edgeprune.recipe.pruning_options import library_options
    from edgeprune.sparsity.wrapper import leaf_layers

    if allocation is not None and allocation["structure"] == "channels":
        # A latency budget's channel plan: applied at once and shrunk; fine-tuning trains the
        # smaller model, so the channels it removed stay removed.
        return ep.shrink(ep.apply_channel_allocation(model, ep.Allocation.from_dict(allocation),
                                                     criterion=pruning["criterion"]))
    if allocation is not None:
        template = make_schedule(pruning["schedule"], steps_per_epoch, epochs)
        return ep.prune_low_magnitude(
            model, pruning_schedule=ep.Allocation.from_dict(allocation).schedules(template),
            **library_options(pruning), **policy(pruning))
    passes = pruning_passes(model, pruning)
    if "groups" not in pruning:
        return ep.prune_low_magnitude(
            model, skip_layers=pruning.get("skip_layers", []),
            pruning_schedule=make_schedule(pruning["schedule"], steps_per_epoch, epochs,
                                           check_updates="sparsity_m_by_n" not in pruning),
            **library_options(pruning), **policy(pruning))
    for where, settings, chosen in passes:
        others = [layer.name for layer in leaf_layers(model) if layer.name not in chosen]
        model = ep.prune_low_magnitude(
            model, skip_layers=others,
            pruning_schedule=make_schedule(settings["schedule"], steps_per_epoch, epochs,
                                           f"{where}.schedule",
                                           "sparsity_m_by_n" not in settings),
            **library_options(settings), **policy(pruning))
    return model


def policy(pruning):
    """The `pruning_policy` argument a recipe's `pruning.policy` asks for."""
    if pruning.get("policy") == "xnnpack":
        return {"pruning_policy": ep.PruneForLatencyOnXNNPack()}
    return {}


def finished_allocation(ctx):
    """The `allocation.json` of a finished allocate stage (as a dict), else None."""
    if "allocate" not in ctx.state["finished"]:
        return None
    with open(ctx.path(ctx.output("allocate", "allocation"))) as f:
        return json.load(f)


def run_prune(ctx):
    """Prunes while fine-tuning, with a checkpoint per epoch; saves `pruned.keras` (wrapped).
    With `pruning.iterative`, runs `run_iterative` instead."""
    import keras

    from edgeprune.recipe import training

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

    shrunk_plan = allocation is not None and allocation["structure"] == "channels"
    callbacks = [] if shrunk_plan else [ep.UpdatePruningStep()]  # a shrunk plan has no masks
    model = ctx.train("prune", start, tune["epochs"], callbacks)
    return ctx.keras_result("prune", model, "pruned.keras", "pruned (Keras, wrapped)",
                            output_name="pruned")


def run_iterative(ctx):
    """Iterative magnitude pruning of the baseline with `ep.iterative_magnitude_pruning`.

    Every round, the dense round 0 included, trains `pruning.fine_tune.epochs` epochs with a
    fresh optimizer; `rewind_step` counts batches of round 0. Each finished round's model,
    sparsity and test accuracy stay in `imp/`, and a new run resumes after the last finished
    round (the round in progress is redone). Saves the last round as `pruned.keras` (plain).
    """
    import keras

    from edgeprune.choose import iterative as imp_module
    from edgeprune.recipe import training

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

    rounds = spec["rounds"]
    current = [rounds_done]  # the round being trained, for the progress lines

    def train(model, callbacks):
        epochs = tune["epochs"]
        ctx.log(f"IMP round {current[0]}/{rounds}: training {epochs} epoch"
                f"{'s' if epochs != 1 else ''}{' (dense)' if current[0] == 0 else ''}")
        training.compile_for(model, tune)
        model.fit(**ctx.data.fit_arguments(), epochs=tune["epochs"], verbose=0,
                  callbacks=[*callbacks, *ctx.callbacks,
                             training.ProgressBar(f"IMP round {current[0]}/{rounds}")],
                  **training.test_metrics(ctx.data))

    def evaluate(model):
        metric = training.accuracy(model, ctx.data.test_x, ctx.data.test_y)
        weights = ep.sparsity_report(model)  # as imp.json counts it
        sparsity = sum(w["zeros"] for w in weights) / max(sum(w["size"] for w in weights), 1)
        ctx.log(f"IMP round {current[0]}/{rounds}: sparsity {sparsity:.1%}, "
                f"test accuracy {metric:.2%}")
        current[0] += 1
        return metric

    result = ep.iterative_magnitude_pruning(
        ctx.load(ctx.output("baseline", "model")), train, evaluate, ctx.path(IMP_FOLDER),
        rounds=rounds, final_sparsity=target, rewind_step=spec["rewind_step"], pruning_scope=pruning["scope"],
        skip_layers=pruning.get("skip_layers", []), progress=False)
    stage = ctx.keras_result("prune", result.model, "pruned.keras",
                             f"pruned (Keras, IMP round {rounds})", output_name="pruned")
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
    from edgeprune.choose import iterative as imp_module

    path = os.path.join(folder, imp_module.STATE_FILE)
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return len(json.load(f)["rounds"])


register_stage(Stage("prune", run_prune, lambda r: "pruning" in r, scratch=(IMP_FOLDER,)))
