"""A run on the Keras backend its recipe names (`backend: jax`), from a process on another one.

Keras picks its backend once per process, when it is first imported. `edgeprune run --backend`
sets `KERAS_BACKEND` before that, so the run stays in the command's process; `run_recipe` called
from Python with Keras already on another backend runs the recipe in a child process with
`KERAS_BACKEND` set (`python -m edgeprune.recipe.backend REQUEST`). The child's output goes to the
same terminal, and its outcome (finished, a refused recipe, a failed stage) comes back through a
file in the request's scratch folder, so `run_recipe` raises the same errors either way.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile

from edgeprune.processes import child_environment
from edgeprune.recipe.schema import BACKENDS, RecipeError

_EXTRA = {"jax": "jax", "torch": "torch", "tensorflow": None}  # pyproject extras


def backend_problem(backend):
    """Why the run cannot use `backend` (its package is not installed), or None."""
    if backend not in BACKENDS:
        return f"backend: {backend!r} is not one of {', '.join(BACKENDS)}"
    if importlib.util.find_spec(backend) is None:
        extra = _EXTRA[backend]
        how = f"pip install 'edgeprune[{extra}]'" if extra else f"pip install {backend}"
        return f"backend: {backend} needs the {backend} package, which is not installed ({how})"
    return None


def needs_child(recipe):
    """Whether the recipe names a backend other than the one Keras runs on in this process."""
    import keras

    return recipe.get("backend") not in (None, keras.config.backend())


def run_in_child(recipe, out, until=None, restart=False, callbacks=()):
    """Runs `recipe` into `out` in a child process on its backend; returns the final state."""
    from edgeprune.recipe.run_records import read_state
    from edgeprune.recipe.runner import StageFailed

    backend = recipe["backend"]
    problem = backend_problem(backend)
    if problem:
        raise RecipeError(f"{recipe.path}: {problem}")
    if callbacks:
        raise RecipeError(
            f"{recipe.path}: backend: {backend} runs in a child process, which cannot take this "
            f"process's callbacks; start Python with KERAS_BACKEND={backend} to pass them")
    with tempfile.TemporaryDirectory(prefix="edgeprune-run-") as folder:
        request = os.path.join(folder, "request.json")
        with open(request, "w", encoding="utf-8") as f:
            json.dump({"recipe": dict(recipe), "path": recipe.path,
                       "overrides": recipe.overrides, "out": os.path.abspath(out),
                       "until": until, "restart": restart,
                       "outcome": os.path.join(folder, "outcome.json")}, f, default=str)
        process = subprocess.Popen([sys.executable, "-m", "edgeprune.recipe.backend", request],
                                   stdin=subprocess.DEVNULL,
                                   env=child_environment(KERAS_BACKEND=backend))
        try:
            process.wait()
        except KeyboardInterrupt:
            process.wait()  # Ctrl-C reached the child too: it saves what it has and stops
            raise
        try:
            with open(os.path.join(folder, "outcome.json"), encoding="utf-8") as f:
                outcome = json.load(f)
        except (OSError, ValueError):
            raise RecipeError(f"{recipe.path}: the run on the {backend} backend (a child "
                              f"process) ended with exit status {process.returncode} and no "
                              "result; its output above says why") from None
    if outcome.get("interrupted"):
        raise KeyboardInterrupt
    if "stage" in outcome:
        failed = StageFailed(outcome["stage"], RuntimeError())
        failed.args = (outcome["error"],)
        raise failed
    if "error" in outcome:
        raise RecipeError(outcome["error"])
    return read_state(out)


def child_main(request_path):
    """The child: runs the request's recipe on this process's backend; see the module docstring."""
    from edgeprune.recipe.loader import Recipe
    from edgeprune.recipe.runner import StageFailed, run_recipe

    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    recipe = Recipe(request["recipe"], request["path"], request["overrides"])
    outcome = {"ok": True}
    try:
        run_recipe(recipe, request["out"], until=request["until"], restart=request["restart"])
    except StageFailed as error:
        outcome = {"stage": error.stage, "error": str(error)}
    except RecipeError as error:
        outcome = {"error": str(error)}
    except KeyboardInterrupt:
        outcome = {"interrupted": True}
    with open(request["outcome"], "w", encoding="utf-8") as f:
        json.dump(outcome, f)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
