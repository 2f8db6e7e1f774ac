"""Keras callbacks for pruning: `UpdatePruningStep` and `PruningSummaries` (TensorBoard)."""

import os

import keras
import numpy as np
import tensorboard.summary
from keras import ops

from edgeprune.sparsity.controller import PruningController, sync_from_trainer
from edgeprune.sparsity.wrapper import pruning_wrappers


class UpdatePruningStep(keras.callbacks.Callback):
    """Advances the pruning step every batch and updates masks when the schedule says so.

    Required when training a pruned model with `fit()` (training without it raises an error that
    says so). A restored model resumes at its saved step. A custom training loop calls the hooks
    itself, as tfmot's guide does: `set_model(model)`, `on_train_begin()`, then
    `on_train_batch_begin(batch=-1)` before each batch and `on_epoch_end(batch=-1)` after each
    epoch (the argument names are tfmot's).

    In `fit`, when the model's optimizer keeps zero weights at zero (SGD, Adam, AdamW, RMSprop
    and others: `edgeprune.sparsity.optimizer_state`), pruned weights are kept at 0 in the
    variables and each step masks gradients instead of multiplying kernels by masks, which is
    faster (`PruningController`). `keep_weights_masked=False` multiplies at every step.

    >>> model.fit(x, y, callbacks=[ep.UpdatePruningStep()])  # doctest: +SKIP
    """

    def __init__(self, keep_weights_masked=True):
        super().__init__()
        self.keep_weights_masked = keep_weights_masked
        self.controller = None

    def on_train_begin(self, logs=None):
        # `fit` sets params; a hand-written loop calling these hooks may step another optimizer.
        in_fit = bool(self.params)
        optimizer = getattr(self.model, "optimizer", None)
        self.controller = PruningController(
            self.model, optimizer if self.keep_weights_masked and in_fit else None)
        self.controller.begin()

    def on_train_batch_begin(self, batch, logs=None):
        self.controller.step()

    def on_epoch_end(self, batch, logs=None):
        self.controller.end_epoch()

    def on_train_end(self, logs=None):
        self.controller.end()


class PruningSummaries(keras.callbacks.Callback):
    """Writes per-weight sparsity and mask threshold to TensorBoard at every epoch's begin and
    end (once per step: the end of one epoch is the begin of the next). The `tensorboard`
    package writes the event files, so it works on every Keras backend.

    Use it together with `UpdatePruningStep`:

    >>> model.fit(x, y, callbacks=[ep.UpdatePruningStep(),
    ...                            ep.PruningSummaries(log_dir="logs")])  # doctest: +SKIP

    A custom training loop calls `set_model(model)` and `on_epoch_begin(epoch)` (tfmot's guide),
    or `on_epoch_end(epoch)`; nothing else is needed.
    """

    def __init__(self, log_dir, update_freq="epoch"):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise ValueError(f"log_dir must be a non-empty path (str or os.PathLike), got "
                             f"{log_dir!r}.")
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"update_freq must be 'epoch' or a positive number of batches, "
                             f"got {update_freq!r}.")
        self.log_dir = os.fspath(log_dir)
        self.update_freq = update_freq
        self._writer = None
        self._wrappers = []
        self._last_step = None

    def on_train_begin(self, logs=None):
        self._open()

    def on_epoch_begin(self, epoch, logs=None):
        self._write()

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq != "epoch" and (batch + 1) % self.update_freq == 0:
            self._write()

    def on_epoch_end(self, epoch, logs=None):
        self._write()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _open(self):
        """Finds the wrappers and opens the writer: at `on_train_begin`, or at the first write
        of a custom loop that calls no other hook."""
        self._wrappers = pruning_wrappers(self.model)
        if not self._wrappers:
            raise ValueError("PruningSummaries needs a model built with "
                             "edgeprune.prune_low_magnitude(...): this one has no pruning wrappers.")
        self._writer = tensorboard.summary.Writer(os.path.join(self.log_dir, "metrics"))
        self._last_step = None

    def _write(self):
        if self._writer is None:
            self._open()
        # A model without an Input has no masks before its first batch built it.
        wrappers = [wrapper for wrapper in self._wrappers if wrapper.built]
        step = wrappers[0].current_step() if wrappers else None
        if step is None or step == self._last_step:
            return
        self._last_step = step
        sync_from_trainer(self.model)  # JAX's fit, mid-epoch
        for wrapper in wrappers:
            for weight, mask, threshold in zip(wrapper.pruned_weights, wrapper.masks,
                                               wrapper.thresholds):
                tag = f"{wrapper.layer.name}/{weight.name}"
                sparsity = 1.0 - float(np.mean(ops.convert_to_numpy(mask)))
                self._writer.add_scalar(f"{tag}/sparsity", sparsity, step)
                self._writer.add_scalar(f"{tag}/threshold",
                                        float(ops.convert_to_numpy(threshold)), step)
        self._writer.flush()
