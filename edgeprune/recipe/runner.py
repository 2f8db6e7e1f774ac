"""`run_recipe`: runs a recipe's stages in order into a run folder, resuming where it stopped.

The run folder holds `state.json` (the recipe's fingerprint, the SHA-256 of every input file the
run reads, and, per finished stage, its output files with their sizes and SHA-256, metrics and
duration) and `stages.log` (one line per stage started, finished, skipped or resumed). A stage is
skipped only if each of its outputs still has the size and hash it was written with; a stage that
runs again invalidates every later stage, its outputs and its epoch checkpoints. A folder whose
recipe settings or input files (model and data factories' code, `.keras`, npz) changed is not
resumed. Training stages resume from their last per-epoch checkpoint, so an interruption loses
at most the epoch in progress. Every file goes inside the run folder (`RunContext.path`).

>>> from edgeprune.recipe import load_recipe, run_recipe
>>> run_recipe(load_recipe("recipes/quickstart.yaml"), "runs/quickstart")  # doctest: +SKIP
"""

import contextlib
import datetime
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time

import keras
from tqdm.auto import tqdm

import edgeprune as ep
from device_bench.fileio import atomic_write
from edgeprune.model.saving import save_model_atomically
from edgeprune.processes import is_alive
from edgeprune.recipe import backend, preflight, sources, training
from edgeprune.recipe.loader import host_key_warnings
from edgeprune.recipe.modelstats import model_stats
from edgeprune.recipe.run_records import STATE_FILE, read_state
from edgeprune.recipe.schema import RecipeError
from edgeprune.recipe.stages import enabled_stages
from edgeprune.sparsity import distributed

LOG_FILE = "stages.log"
CHECKPOINTS = "checkpoints"
LOCK_FILE = ".edgeprune.lock"


class RunContext:
    """What a stage sees: the recipe, the run folder, the data, finished stages' outputs."""

    def __init__(self, recipe, out, state, callbacks=(), distribution=None):
        self.recipe, self.out, self.state = recipe, os.path.abspath(out), state
        self.callbacks = list(callbacks)
        self.distribution = distribution  # the keras.distribution training runs under

    def path(self, relative):
        """`relative` inside the run folder; RecipeError for a path that would leave it."""
        path = os.path.normpath(os.path.join(self.out, relative))
        if os.path.isabs(relative) or not path.startswith(self.out + os.sep):
            raise RecipeError(f"{relative!r}: outside the run folder {self.out}; a run writes "
                              "and reads only inside its folder")
        return path

    @functools.cached_property
    def data(self):
        return sources.load_data(self.recipe)

    def source_model(self):
        return sources.load_model(self.recipe)

    def load(self, relative):
        return keras.models.load_model(self.path(relative), safe_mode=True)

    def output_files(self, stage):
        return self.state["finished"][stage]["outputs"]

    def output(self, stage, name):
        return self.output_files(stage)[name]

    def latest_model(self):
        """The last `model` output of the finished stages: what gets converted."""
        return [record["outputs"]["model"] for record in self.state["finished"].values()
                if "model" in record["outputs"]][-1]

    def log(self, message):
        log_line(self.out, message)

    def train(self, stage, start, epochs, callbacks=()):
        """Trains the model `start()` builds, or resumes the stage's last epoch checkpoint."""
        folder = self.path(CHECKPOINTS)
        scope = self.distribution.scope() if self.distribution else contextlib.nullcontext()
        with scope:
            model, epochs_done = training.resume_or_start(folder, stage, start)
            if epochs_done:
                self.log(f"resume {stage} from checkpoint after epoch {epochs_done}")
            training.fit(model, self.data, epochs, folder, stage, epochs_done,
                         [*callbacks, *self.callbacks])
        return model

    def keras_result(self, stage, model, file, label, output_name="model"):
        """Saves `model` atomically as `file`; returns the stage result with its report row."""
        save_model_atomically(model, self.path(file))
        stats = model_stats(model)
        row = {"label": label, "kind": "keras", "file": file, "stage": stage,
               "accuracy": training.accuracy(model, self.data.test_x, self.data.test_y),
               "raw_bytes": stats["weight_bytes"],
               "gzip_bytes": stats["weight_gzip_bytes"], **stats}
        return {"outputs": {output_name: file}, "artifacts": [row]}

    def tflite_row(self, tflite, model, file, label):
        """The report row of a `.tflite`: sizes from `ep.size_report`, accuracy from
        `ep.validate_tflite` against its Keras model on the test split, MACs of that model."""
        sizes = ep.size_report(tflite)
        check = ep.validate_tflite(tflite, model, self.data.test_x, self.data.test_y)
        stats = model_stats(model)
        return {"label": label, "kind": "tflite", "file": file, "stage": "convert",
                "accuracy": check.tflite_accuracy, "top1_agreement": check.top1_agreement,
                "raw_bytes": sizes.raw_bytes, "gzip_bytes": sizes.gzip_bytes,
                "macs": stats["macs"], "nonzero_macs": stats["nonzero_macs"]}


class StageFailed(RuntimeError):
    """A stage raised; the finished stages before it stay, and a new run resumes there."""

    def __init__(self, stage, error):
        super().__init__(f"stage {stage} failed: {type(error).__name__}: {error}")
        self.stage = stage


def log_line(out, message):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(os.path.join(out, LOG_FILE), "a", encoding="utf-8") as f:
        f.write(f"{stamp} {message}\n")
    tqdm.write(f"[edgeprune] {message}")


def run_recipe(recipe, out, until=None, restart=False, callbacks=()):
    """Runs (or resumes) `recipe` into folder `out`; returns the final state.

    Args:
        recipe: a `Recipe` from `load_recipe`.
        out: the run folder; created if needed.
        until: stop after this stage (the next call continues from there).
        restart: forget finished stages and checkpoints in `out` and start over.
        callbacks: extra Keras callbacks for every training stage (e.g. TensorBoard).
    """
    stages = enabled_stages(recipe)
    names = [stage.name for stage in stages]
    if until is not None and until not in names:
        raise RecipeError(f"--until {until!r}: this recipe's stages are {', '.join(names)}")
    if backend.needs_child(recipe):  # `backend:` other than this process's Keras backend
        return backend.run_in_child(recipe, out, until, restart, callbacks)
    if "distribution" in recipe:
        return _run_distributed(recipe, out, stages, until, restart, callbacks)
    os.makedirs(out, exist_ok=True)
    with _run_lock(out):
        return _run_stages(recipe, out, stages, until, restart, callbacks)


def _run_distributed(recipe, out, stages, until, restart, callbacks):
    """Every process runs every stage, in step; training runs under `DataParallel` over all
    of them (creating or assigning a variable is then a collective), the rest on each process's
    own. Only the first process writes `out`; the others run in a copy of it, taken before the
    first changes anything (so they resume alike), and thrown away."""
    try:
        distributed.start_data_parallel(**recipe["distribution"])
    except ValueError as error:
        raise RecipeError(f"{recipe.path}: distribution: {error}") from None
    data_parallel = keras.distribution.distribution()
    keras.distribution.set_distribution(None)  # `RunContext.train` enters it
    # Every model built (the preflight's too) starts from the same weights everywhere.
    keras.utils.set_random_seed(recipe["seed"])
    if distributed.is_first_process():
        os.makedirs(out, exist_ok=True)
        distributed.barrier("edgeprune run: folder copied")
        with _run_lock(out):
            return _run_stages(recipe, out, stages, until, restart, callbacks, data_parallel)
    with tempfile.TemporaryDirectory(prefix="edgeprune-process-") as scratch:
        copy = os.path.join(scratch, "run")
        if os.path.isdir(out):
            shutil.copytree(out, copy, symlinks=True,
                            ignore=shutil.ignore_patterns(LOCK_FILE))
        os.makedirs(copy, exist_ok=True)
        distributed.barrier("edgeprune run: folder copied")
        return _run_stages(recipe, copy, stages, until, restart, callbacks, data_parallel)


def _run_stages(recipe, out, stages, until, restart, callbacks, distribution=None):
    names = [stage.name for stage in stages]
    state = _open_state(recipe, out, restart)
    context = RunContext(recipe, out, state, callbacks, distribution)
    for line in host_key_warnings(recipe):
        context.log(f"warning: {line}")
    first_to_run = _first_unfinished(context, names)
    for name in names[:first_to_run]:
        context.log(f"skip {name} (finished earlier)")  # outputs verified
    for name in [n for n in state["finished"] if n not in names[:first_to_run]]:
        del state["finished"][name]  # a stage redone invalidates what came after it
    _write_state(out, state)
    for stage in stages[first_to_run + 1:]:
        # What a stage keeps to resume is valid only for the outputs of the stages before it.
        for folder in stage.scratch:
            shutil.rmtree(os.path.join(out, folder), ignore_errors=True)
        training.remove_checkpoints(context.path(CHECKPOINTS), stage.name)
    # --until: stop after that stage, even when it finished in an earlier run.
    last = names.index(until) + 1 if until is not None else len(stages)
    if first_to_run < last:
        # What the stages still to run would refuse, before any of them trains.
        try:
            preflight.check(recipe, data=lambda: context.data,
                            model=lambda: _model_so_far(context), pending=names[first_to_run:last])
        except RecipeError as error:
            context.log("cannot run: " + "; ".join(str(error).splitlines()[1:]).strip())
            raise
    progress = tqdm(stages, desc=recipe.name, unit="stage", initial=first_to_run,
                    total=len(stages), dynamic_ncols=True, disable=None)
    for stage in stages[first_to_run:last]:
        progress.set_postfix_str(stage.name)
        context.log(f"start {stage.name}")
        began = time.perf_counter()
        try:
            result = stage.run(context)
        except KeyboardInterrupt:
            context.log(f"interrupted {stage.name}")
            raise
        except Exception as error:
            context.log(f"failed {stage.name}: {type(error).__name__}: {error}")
            raise StageFailed(stage.name, error) from error
        state["finished"][stage.name] = {
            **result, "seconds": time.perf_counter() - began,
            "files": {file: _file_record(context.path(file))
                      for file in result["outputs"].values()}}
        _write_state(out, state)
        training.remove_checkpoints(context.path(CHECKPOINTS), stage.name)
        context.log(f"finish {stage.name} ({state['finished'][stage.name]['seconds']:.1f} s)")
        progress.update(1)
    progress.close()
    return state


@contextlib.contextmanager
def _run_lock(out):
    """One run per folder: a second `edgeprune run` into it would mix their files."""
    path = os.path.join(out, LOCK_FILE)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            with open(path) as f:
                owner = f.read().strip()
            if owner.isdigit() and is_alive(int(owner)):
                raise RecipeError(f"{out} is in use by another edgeprune run (pid {owner}); "
                                  "wait for it or choose another --out") from None
            os.remove(path)  # left by a run that was killed
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        os.remove(path)


def _open_state(recipe, out, restart):
    try:
        state = read_state(out)
    except (OSError, ValueError) as error:
        if not restart:
            raise RecipeError(f"{os.path.join(out, STATE_FILE)}: cannot read it ({error}); pass "
                              "--restart to start the run over, or choose another --out") from None
        state = {}
    fingerprint = recipe.fingerprint()
    inputs = {key: _file_record(path) for key, path in recipe.input_files().items()}
    if state and not restart:
        if state.get("fingerprint") != fingerprint:
            raise RecipeError(
                f"{out} holds a run of different settings (recipe {state.get('recipe')!r}, "
                f"overrides {state.get('overrides')}); pass --restart to discard it or choose "
                "another --out")
        changed = [key for key in state.get("inputs", inputs)
                   if state["inputs"][key] != inputs.get(key)]
        if changed:
            raise RecipeError(
                f"{out} was run with other contents of {', '.join(changed)} "
                f"({', '.join(recipe.input_files().get(k, '?') for k in changed)}): its results "
                "would not be the ones this recipe gives now; pass --restart to run it again, "
                "or choose another --out")
        state.setdefault("inputs", inputs)  # a folder from before inputs were recorded
    if restart or not state:
        training.remove_checkpoints(os.path.join(out, CHECKPOINTS), "*")
        state = {"recipe": recipe.path, "overrides": recipe.overrides,
                 "fingerprint": fingerprint, "name": recipe.name, "inputs": inputs,
                 "finished": {}}
        _write_state(out, state)
    return state


def _first_unfinished(context, names):
    """Index of the first stage that is not finished, or one of whose output files is missing or
    no longer what it wrote (size and SHA-256 in state.json)."""
    for index, name in enumerate(names):
        record = context.state["finished"].get(name)
        if record is None:
            return index
        for file in record["outputs"].values():
            problem = _changed(context.path(file), record.get("files", {}).get(file))
            if problem:
                context.log(f"redo {name}: {file} {problem}")
                return index
    return len(names)


def _model_so_far(context):
    """The latest model a finished stage saved (what the next stage starts from), or None."""
    if not any("model" in record["outputs"] for record in context.state["finished"].values()):
        return None
    return context.load(context.latest_model())


def _file_record(path):
    """{"bytes", "sha256"} of a file, read in chunks; None if it cannot be read."""
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
    except OSError:
        return None
    return {"bytes": size, "sha256": digest.hexdigest()}


def _changed(path, expected):
    """Why the file at `path` is not the one recorded (`expected`), or None if it is."""
    if not os.path.isfile(path):
        return "is missing"
    if expected is None:
        return None  # recorded before sizes and hashes were (existence was all it checked)
    actual = _file_record(path)
    if actual is None:
        return "cannot be read"
    if actual["bytes"] != expected["bytes"]:
        return f"changed since it was written ({actual['bytes']} bytes, not {expected['bytes']})"
    if actual["sha256"] != expected["sha256"]:
        return "changed since it was written (its SHA-256 differs)"
    return None


def _write_state(out, state):
    atomic_write(os.path.join(out, STATE_FILE), json.dumps(state, indent=2, default=float))
