"""Training for recipe stages: compile from recipe settings, per-epoch checkpoints, progress bar.

A checkpoint is the whole model (pruning wrappers with their masks and step, optimizer state) in
one `.keras` file written atomically at every epoch end, so an interrupted run loses at most the
epoch in progress and resumes with `resume_or_start`.

>>> model, done = resume_or_start("runs/q/checkpoints", "prune", build)  # doctest: +SKIP
>>> fit(model, data, 10, "runs/q/checkpoints", "prune", initial_epoch=done)  # doctest: +SKIP
"""

import glob
import os
import re
import time

import keras
import numpy as np
from tqdm.auto import tqdm

from edgeprune.model.saving import save_model_atomically

OPTIMIZERS = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
              "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
LOSSES_WITH_LOGITS = {"sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
                      "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
                      "binary_crossentropy": keras.losses.BinaryCrossentropy}


def compile_for(model, settings):
    """Compiles `model` with the optimizer, learning rate and loss of a `training` section."""
    name = settings["loss"]
    if name in LOSSES_WITH_LOGITS:
        loss = LOSSES_WITH_LOGITS[name](from_logits=settings["from_logits"])
    else:
        loss = keras.losses.get(name)
    optimizer = OPTIMIZERS[settings["optimizer"]](learning_rate=settings["learning_rate"])
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


def checkpoint_path(folder, prefix, epochs_done):
    return os.path.join(folder, f"{prefix}-epoch-{epochs_done:04d}.keras")


def latest_checkpoint(folder, prefix):
    """`(path, epochs_done)` of the newest checkpoint of `prefix` in `folder`, or `(None, 0)`."""
    pattern = re.compile(re.escape(prefix) + r"-epoch-(\d+)\.keras$")
    found = [(int(m.group(1)), path) for path in glob.glob(os.path.join(folder, prefix + "-*"))
             if (m := pattern.search(os.path.basename(path)))]
    if not found:
        return None, 0
    epochs_done, path = max(found)
    return path, epochs_done


def remove_checkpoints(folder, prefix, keep=None):
    for path in glob.glob(os.path.join(folder, f"{prefix}-epoch-*.keras")):
        if path != keep:
            os.remove(path)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model atomically after every epoch and removes the previous checkpoint.

    Put it after `UpdatePruningStep` in the callback list, so the masks are baked into the
    weights before the save.
    """

    def __init__(self, folder, prefix):
        super().__init__()
        self.folder, self.prefix = folder, prefix

    def on_epoch_end(self, epoch, logs=None):
        path = save_model_atomically(self.model, checkpoint_path(self.folder, self.prefix,
                                                                 epoch + 1))
        remove_checkpoints(self.folder, self.prefix, keep=path)


class ProgressBar(keras.callbacks.Callback):
    """A tqdm bar over the batches of all remaining epochs (on a terminal), and one line per
    epoch with its metrics, on the test split too when `fit` was given it as validation data:

        [edgeprune]   prune epoch 2/6: loss 0.1032, accuracy 96.94%, test loss 0.1395, test accuracy 95.56% (0.6 s)
    """

    def __init__(self, description, initial_epoch=0):
        super().__init__()
        self.description = description
        self.initial_epoch = initial_epoch
        self.bar = None
        self.started = None

    def on_train_begin(self, logs=None):
        remaining = self.params["epochs"] - self.initial_epoch
        self.bar = tqdm(total=remaining * (self.params["steps"] or 0), desc=self.description,
                        unit="batch", leave=False, dynamic_ncols=True, disable=None)

    def on_epoch_begin(self, epoch, logs=None):
        self.bar.set_description(f"{self.description} epoch {epoch + 1}/{self.params['epochs']}")
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
        seconds = time.perf_counter() - (self.started or time.perf_counter())
        names = sorted(logs, key=lambda name: name.removeprefix("val_") != "loss")  # loss first
        metrics = ", ".join(_metric(name, logs[name]) for name in names
                            if not name.startswith("val_"))
        tested = ", ".join(_metric("test " + name[4:], logs[name]) for name in names
                           if name.startswith("val_"))
        self.bar.write(f"[edgeprune]   {self.description} epoch {epoch + 1}/"
                       f"{self.params['epochs']}: {metrics}{', ' + tested if tested else ''} "
                       f"({seconds:.1f} s)")

    def on_train_end(self, logs=None):
        self.bar.close()


def _metric(name, value):
    return f"{name} {100 * value:.2f}%" if name.endswith("accuracy") else f"{name} {value:.4f}"


def resume_or_start(folder, prefix, start):
    """The newest checkpoint (loaded with safe_mode on) and its epoch count, else `start()`, 0."""
    path, epochs_done = latest_checkpoint(folder, prefix)
    if path is None:
        return start(), 0
    return keras.models.load_model(path, safe_mode=True), epochs_done


def fit(model, data, epochs, folder, prefix, initial_epoch=0, callbacks=()):
    """Trains up to `epochs` from `initial_epoch` with checkpoints; returns the History logs."""
    progress = ProgressBar(prefix, initial_epoch)
    history = model.fit(**data.fit_arguments(), epochs=epochs, initial_epoch=initial_epoch,
                        verbose=0, callbacks=[*callbacks, EpochCheckpoint(folder, prefix),
                                              progress], **test_metrics(data))
    return history.history


def test_metrics(data):
    """`fit` arguments that measure the test split after each epoch, for the progress lines only
    (nothing is selected on it: no early stopping, no checkpoint choice)."""
    return {"validation_data": (data.test_x, data.test_y), "validation_batch_size": 256}


def accuracy(model, x, y):
    """Top-1 accuracy of `model` on arrays (argmax of its outputs; no compile needed)."""
    # Eager calls in batches: `predict` would trace a new function for every model of the run.
    outputs = np.concatenate([
        keras.ops.convert_to_numpy(model(x[start:start + 256], training=False))
        for start in range(0, len(x), 256)])
    return float(np.mean(np.argmax(outputs.reshape(len(outputs), -1), axis=1) == y.reshape(-1)))
