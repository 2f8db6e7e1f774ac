"""Iterative magnitude pruning (IMP) with optional weight rewinding (the lottery ticket procedure).

Round 0 trains the dense model. Each later round prunes, one-shot, a fraction of the weights
still alive (the smallest magnitudes), optionally resets the survivors to their values at an
early training step (Frankle & Carbin 2019; Frankle et al. 2020 rewind to step k > 0), and
retrains with the masks fixed. Every finished round leaves its model (`round_N.keras`, a plain
Keras model), its sparsity and its metric in `directory`; a run started again on the same
directory resumes after the last finished round.
"""

import dataclasses
import json
import os
import tempfile

import keras
import numpy as np
from tqdm.auto import tqdm

from device_bench.fileio import atomic_write
from edgeprune.model.saving import save_model_atomically
from edgeprune.sparsity.callbacks import UpdatePruningStep
from edgeprune.sparsity.controller import PruningController
from edgeprune.sparsity.prune import prune_low_magnitude
from edgeprune.model.rebuild import copy_layer, rebuild
from edgeprune.sparsity.wrapper import leaf_layers
from edgeprune.sparsity.schedules import ConstantSparsity
from edgeprune.sparsity.strip import sparsity_report, strip_pruning
from edgeprune.sparsity.wrapper import PruneLowMagnitude

STATE_FILE = "imp.json"
REWIND_FILE = "rewind.npz"


@dataclasses.dataclass
class ImpRound:
    """One finished round: 0 is the dense model."""

    round: int
    sparsity: float
    layer_sparsity: dict
    metric: float
    model_path: str


@dataclasses.dataclass
class ImpResult:
    """Every round of a run (the resumed ones too) and the last round's model."""

    rounds: list
    model: keras.Model


def iterative_magnitude_pruning(model, train_fn, eval_fn, directory, rounds, final_sparsity,
                                rewind_step=None, pruning_scope="layer", skip_layers=(),
                                progress=True):
    """Prunes `model` over `rounds` rounds of prune, (rewind,) retrain; resumable from disk.

    Args:
        model: an untrained or pretrained Keras model; it is not changed.
        train_fn: `train_fn(model, callbacks)` compiles and trains `model` in place, passing
            `callbacks` to `fit` (they carry the pruning step; a fresh optimizer each round, as
            in the lottery-ticket experiments).
        eval_fn: `eval_fn(model) -> float`, measured on the plain (stripped) model of each round.
        directory: where rounds, the rewind checkpoint and `imp.json` are kept.
        rounds: number of pruning rounds (after the dense round 0).
        final_sparsity: sparsity after the last round: a number, or `{layer name: sparsity}`
            (e.g. `allocate(...).sparsity`; unnamed layers stay dense). Round r reaches
            1 - (1 - final) ** (r / rounds): each round removes the same fraction of what is left.
        rewind_step: None keeps the trained weights (prune and fine-tune); 0 resets survivors to
            their initial values (lottery ticket); k > 0 to their values after k training
            batches of round 0 (rewinding). Masks are always kept.
        pruning_scope: "layer" or "global" (one ranking across layers; needs a number).
        skip_layers: layers never pruned.

    Example:

    >>> def train(model, callbacks):
    ...     model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    ...     model.fit(x, y, epochs=3, callbacks=callbacks, verbose=0)
    >>> result = ep.iterative_magnitude_pruning(
    ...     model, train, lambda m: m.evaluate(xv, yv, verbose=0)[1], "imp_run",
    ...     rounds=3, final_sparsity=0.9, rewind_step=0)  # doctest: +SKIP
    >>> [(r.round, round(r.sparsity, 2)) for r in result.rounds]  # doctest: +SKIP
    [(0, 0.0), (1, 0.54), (2, 0.78), (3, 0.9)]
    """
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}.")
    _check_targets(final_sparsity)
    if rewind_step is not None and (not isinstance(rewind_step, int) or rewind_step < 0):
        raise ValueError(f"rewind_step must be None or an integer >= 0, got {rewind_step!r}.")
    if not callable(train_fn) or not callable(eval_fn):
        raise ValueError("train_fn(model, callbacks) and eval_fn(model) must be callables.")
    run = _Run(directory, {"rounds": rounds, "final_sparsity": final_sparsity,
                           "rewind_step": rewind_step, "pruning_scope": pruning_scope,
                           "skip_layers": sorted(skip_layers)})
    current = run.last_model() or rebuild(model, copy_layer)
    if not run.rounds:
        capture = RewindCheckpoint(rewind_step) if rewind_step is not None else None
        train_fn(current, [capture] if capture else [])
        if capture is not None:
            run.save_rewind(capture.weights())
        run.finish(0, current, eval_fn(current))
    checkpoint = run.load_rewind() if rewind_step is not None else None

    for index in tqdm(range(len(run.rounds), rounds + 1), desc="IMP rounds", disable=not progress):
        pruned = prune_low_magnitude(current, pruning_schedule=_schedules(
            final_sparsity, index / rounds), pruning_scope=pruning_scope, skip_layers=skip_layers)
        controller = PruningController(pruned)
        controller.begin()
        controller.update_masks(force=True)
        if checkpoint is not None:
            rewind_weights(pruned, checkpoint)
        train_fn(pruned, [UpdatePruningStep()])
        current = strip_pruning(pruned)
        run.finish(index, current, eval_fn(current))
    return ImpResult(rounds=run.rounds, model=current)


class RewindCheckpoint(keras.callbacks.Callback):
    """Keeps every layer's weights after `step` training batches (0: before the first one).

    >>> capture = RewindCheckpoint(step=20)
    >>> model.fit(x, y, callbacks=[capture])  # doctest: +SKIP
    >>> early = capture.weights()  # doctest: +SKIP
    """

    def __init__(self, step):
        super().__init__()
        self.step = step
        self.batches = 0
        self._weights = None

    def on_train_begin(self, logs=None):
        if self.step == 0 and self._weights is None:
            self._weights = layer_weights(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == self.step:
            self._weights = layer_weights(self.model)

    def weights(self):
        if self._weights is None:
            raise ValueError(f"rewind_step={self.step} was never reached: training ran "
                             f"{self.batches} batches. Use a smaller rewind_step.")
        return self._weights


def layer_weights(model):
    """Each leaf layer's weights, in model order (the layout `rewind_weights` expects)."""
    return [layer.get_weights() for layer in leaf_layers(model)]


def rewind_weights(pruned_model, checkpoint):
    """Sets every weight of `pruned_model` to `checkpoint` (from `layer_weights` of the unpruned
    model), keeping the masks: pruned positions stay zero, survivors get their early values."""
    layers = list(leaf_layers(pruned_model))
    if len(layers) != len(checkpoint):
        raise ValueError(f"The rewind checkpoint holds {len(checkpoint)} layers, the model "
                         f"{len(layers)}: it comes from a different model.")
    for layer, values in zip(layers, checkpoint):
        inner = layer.layer if isinstance(layer, PruneLowMagnitude) else layer
        inner.set_weights(values)
        if isinstance(layer, PruneLowMagnitude):
            for weight, masked in zip(layer.pruned_weights, layer.masked_weight_values()):
                weight.assign(masked)


def round_sparsity(final_sparsity, fraction):
    """Sparsity after `fraction` of the rounds, each removing the same share of what is left."""
    return 1.0 - (1.0 - final_sparsity) ** fraction


def _schedules(final_sparsity, fraction):
    # end_step=0: prune once (now, forced) and never during the retraining that follows.
    def schedule(target):
        return ConstantSparsity(round_sparsity(target, fraction), begin_step=0, end_step=0)

    if isinstance(final_sparsity, dict):
        return {name: schedule(s) for name, s in final_sparsity.items() if s > 0}
    return schedule(final_sparsity)


def _check_targets(final_sparsity):
    values = final_sparsity.values() if isinstance(final_sparsity, dict) else [final_sparsity]
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"final_sparsity must be a number in [0, 1) or a dict of them, got "
                             f"{final_sparsity!r}.")


class _Run:
    """The on-disk state of one IMP run: finished rounds, their models, the rewind weights."""

    def __init__(self, directory, config):
        self.directory = os.fspath(directory)
        self.config = json.loads(json.dumps(config))  # as it reads back from disk
        self.rounds = []
        path = os.path.join(self.directory, STATE_FILE)
        if os.path.exists(path):
            with open(path) as f:
                state = json.load(f)
            if state["config"] != self.config:
                raise ValueError(f"directory {self.directory!r} holds an IMP run with other "
                                 f"settings {state['config']}; resume with those or use a new "
                                 "directory.")
            self.rounds = [ImpRound(**r) for r in state["rounds"]]

    def last_model(self):
        if not self.rounds:
            return None
        return keras.models.load_model(os.path.join(self.directory, self.rounds[-1].model_path))

    def finish(self, index, model, metric):
        name = f"round_{index}.keras"
        save_model_atomically(model, os.path.join(self.directory, name))
        rows = sparsity_report(model)
        layer_sparsity = {row["layer"]: row["sparsity"] for row in rows}
        overall = sum(row["zeros"] for row in rows) / sum(row["size"] for row in rows)
        self.rounds.append(ImpRound(index, overall, layer_sparsity, float(metric), name))
        state = {"config": self.config, "rounds": [dataclasses.asdict(r) for r in self.rounds]}
        atomic_write(os.path.join(self.directory, STATE_FILE), json.dumps(state, indent=1))

    def save_rewind(self, checkpoint):
        arrays = {f"{i}/{j}": value for i, values in enumerate(checkpoint)
                  for j, value in enumerate(values)}
        arrays["layers"] = np.array([len(values) for values in checkpoint])
        with tempfile.TemporaryFile() as f:
            np.savez(f, **arrays)
            f.seek(0)
            atomic_write(os.path.join(self.directory, REWIND_FILE), f.read())

    def load_rewind(self):
        with np.load(os.path.join(self.directory, REWIND_FILE)) as data:
            return [[data[f"{i}/{j}"] for j in range(count)]
                    for i, count in enumerate(data["layers"])]
