"""The training of the TensorFlow multi-worker tests, run by each worker process
(`MultiWorkerMirroredStrategy` on 127.0.0.1) and by the test process alone, from the same seed.

    python tests/distributed/tf_training.py OUT INDEX PORT,PORT,... KILL_AFTER_EPOCH

A worker trains twice: a custom loop driving `PruningController` (masks into
OUT/custom{INDEX}.npz), then `fit` with `UpdatePruningStep` and `ep.BackupAndRestore(OUT/backup)`
for `EPOCHS` epochs; after epoch KILL_AFTER_EPOCH it writes its masks into OUT/fit{INDEX}.npz and
kills itself (SIGKILL: no cleanup, as a lost machine), leaving the backup to resume from.
"""

import json
import os
import signal
import sys

import keras
import numpy as np
import tensorflow as tf

import edgeprune as ep
from edgeprune.sparsity.wrapper import pruning_wrappers

GLOBAL_BATCH = 64
SAMPLES = 1280  # 20 steps per epoch
EPOCHS = 4
CUSTOM_LOOP_STEPS = 30


def digits():
    (x, y), _ = ep.load_digits()
    return x[:SAMPLES], y[:SAMPLES]


def pruned_model(end_step):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10)(hidden))
    return ep.prune_low_magnitude(
        model, pruning_schedule=ep.PolynomialDecay(0.0, 0.8, 0, end_step, frequency=10))


def masks_of(model):
    return [np.asarray(mask) for wrapper in pruning_wrappers(model) for mask in wrapper.masks]


def dataset():
    return tf.data.Dataset.from_tensor_slices(digits()).batch(GLOBAL_BATCH)


def custom_loop(strategy):
    """`CUSTOM_LOOP_STEPS` steps of SGD driving `PruningController`; returns the masks."""
    with strategy.scope():
        model = pruned_model(end_step=CUSTOM_LOOP_STEPS)
        optimizer = keras.optimizers.SGD(0.1)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    batches = iter(strategy.experimental_distribute_dataset(dataset().repeat()))

    @tf.function
    def train_step(iterator):
        def replica_step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.nn.compute_average_loss(loss_fn(y, model(x, training=True)),
                                                  global_batch_size=GLOBAL_BATCH)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))

        strategy.run(replica_step, args=next(iterator))

    controller = ep.PruningController(model)
    controller.begin()
    for _ in range(CUSTOM_LOOP_STEPS):
        controller.step()
        train_step(batches)
    controller.end_epoch()
    return masks_of(model)


class MasksAfterEpoch(keras.callbacks.Callback):
    """Saves the masks into `path` after epoch `epoch` (1-based); with `kill`, then SIGKILLs this
    process."""

    def __init__(self, epoch, path, kill):
        super().__init__()
        self.epoch, self.path, self.kill = epoch, path, kill

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            np.savez(self.path, *masks_of(self.model))
            if self.kill:
                os.kill(os.getpid(), signal.SIGKILL)


def fit(strategy, backup_dir, after_epoch=None):
    """`fit` for `EPOCHS` epochs with `ep.BackupAndRestore(backup_dir)`; returns (masks, the
    number of epochs run, the final pruning step)."""
    with strategy.scope():
        model = pruned_model(end_step=3 * SAMPLES // GLOBAL_BATCH)
        model.compile(keras.optimizers.SGD(0.1),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callbacks = [ep.UpdatePruningStep(), ep.BackupAndRestore(backup_dir),
                 *([after_epoch] if after_epoch else [])]
    history = model.fit(dataset(), epochs=EPOCHS, shuffle=False, verbose=0,
                        callbacks=callbacks)
    step = int(np.asarray(pruning_wrappers(model)[0].pruning_step))
    return masks_of(model), len(history.history["loss"]), step


def main(out, index, ports, kill_after_epoch):
    ports = ports.split(",")
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
        "task": {"type": "worker", "index": int(index)}})
    strategy = ep.multi_worker_strategy()
    assert strategy.num_replicas_in_sync == len(ports)
    np.savez(os.path.join(out, f"custom{index}.npz"), *custom_loop(strategy))
    fit(strategy, os.path.join(out, "backup"),
        MasksAfterEpoch(int(kill_after_epoch), os.path.join(out, f"fit{index}.npz"), kill=True))


if __name__ == "__main__":
    main(*sys.argv[1:])
