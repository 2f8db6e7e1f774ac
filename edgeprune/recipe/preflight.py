"""What a run would refuse, found before anything trains.

The loader checks a recipe by itself (schema, files, options that go together). Some refusals
need the model or the data: a `skip_layers` name the model lacks, a group pattern that matches no
layer, a pruning policy the model's layout does not fit, a schedule whose first mask update comes
after fine-tuning ends (it depends on the steps per epoch). Those were found by the stage that
needed them, after the baseline had trained. `problems(recipe)` makes the same calls the stages
make (`apply_pruning` wraps a fresh copy of the model; `make_schedule`, `check_rewind_step`, the
export's option check), without training, and lists what they refuse. `edgeprune validate` and
`run_recipe` (before its first stage) both run it, so a recipe `validate` accepts is one `run`
accepts.

>>> check(load_recipe("recipes/quickstart.yaml"))  # doctest: +SKIP
"""

import inspect
import math

from edgeprune.recipe.safeyaml import problem_list
from edgeprune.recipe.schema import RecipeError


def check(recipe, data=None, model=None, pending=None):
    """Raises RecipeError listing `problems(...)`, if any."""
    found = problems(recipe, data, model, pending)
    if found:
        raise RecipeError(problem_list(recipe.path, found, "cannot run"))


def problems(recipe, data=None, model=None, pending=None):
    """What the stages of `recipe` would refuse: one line each, naming the recipe key.

    `data` (a `sources.Data`) and `model` (the model the pending stages start from), or
    functions returning them (or None), are loaded when needed: the model from the recipe's
    source (a factory that fails or returns no Keras model is found here too), built without
    advancing Keras' layer-naming counters, so the model a run builds next gets the names it
    would have got anyway. `pending`: the names of the stages still to run (default: all); a
    resumed run checks only those.
    """
    def pending_(name):
        return pending is None or name in pending

    found = _export_problems(recipe) if pending_("convert") else []
    prunes = "pruning" in recipe and pending_("prune")
    # A run's baseline stage builds the model before anything else: only validate (pending None)
    # builds it for that alone; a run does when pruning needs it.
    if not (prunes or pending is None):
        return found
    from device_bench.errors import BenchError, ModelFileError
    from edgeprune.model.keras_internals import names_unchanged
    from edgeprune.recipe import sources

    def attempt(what, load):
        try:
            return load(), None
        except (RecipeError, ModelFileError, BenchError) as error:
            return None, str(error)
        except Exception as error:  # noqa: BLE001 -- the user's factory raises whatever it raises
            return None, f"{what}: {type(error).__name__}: {error}"

    with names_unchanged():
        model, problem = attempt("model: building it failed", lambda: _given(
            model, lambda: sources.load_model(recipe)))
        if problem or not prunes:
            return found + ([problem] if problem else [])
        steps, problem = attempt("data: loading it failed", lambda: _given(
            data, lambda: _Steps(recipe)).steps_per_epoch)
        if problem:
            return found + [problem]
        return found + _pruning_problems(recipe, model, steps)


def _given(value, default):
    """`value`, or what it returns if it is a function (a Keras model is callable, not a
    function); `default()` where that is None."""
    value = value() if inspect.isroutine(value) else value
    return default() if value is None else value


class _Steps:
    """Stands in for the data when none is loaded: its steps per epoch alone."""

    def __init__(self, recipe):
        self.steps_per_epoch = steps_per_epoch(recipe)


def steps_per_epoch(recipe):
    """Training batches per epoch, as the stages will see them: the bundled digits are counted,
    an npz file is loaded, a data factory is called (its test split read)."""
    from edgeprune.recipe import sources

    spec = recipe["data"]
    if spec["source"] == "digits":
        from edgeprune.data import load_digits

        (x, _), _ = load_digits(seed=recipe["seed"])
        return math.ceil(len(x) / spec["batch_size"])
    return sources.load_data(recipe).steps_per_epoch


def _pruning_problems(recipe, model, steps):
    from edgeprune.recipe.stages import prune

    pruning = recipe["pruning"]
    epochs = pruning["fine_tune"]["epochs"]
    try:
        if "iterative" in pruning:
            prune.check_rewind_step(pruning["iterative"]["rewind_step"], epochs, steps)
            prune.pruning_passes(model, pruning)
        elif "allocation" in pruning:
            # The per-layer targets come from the allocate stage; the schedule is fixed here.
            prune.make_schedule(pruning["schedule"], steps, epochs)
            prune.pruning_passes(model, pruning)
        else:
            prune.apply_pruning(model, pruning, steps, epochs)
    except RecipeError as error:
        return [str(error)]
    except ValueError as error:  # the library's refusal, e.g. a policy the model does not fit
        return [f"pruning: {error}"]
    return []


def _export_problems(recipe):
    from edgeprune.quantize.export import _check_mode

    quantize = recipe["quantize"]
    try:
        _check_mode(None if quantize["mode"] == "none" else quantize["mode"],
                    quantize["int8_io"], quantize["sparse_storage"])
    except ValueError as error:
        return [f"quantize: {error}"]
    return []
