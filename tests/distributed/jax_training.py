"""The training of the JAX multi-process tests: `keras.distribution.DataParallel` over every
device of every process, processes joined by `jax.distributed` on 127.0.0.1 (CPU collectives
through gloo), each process feeding its share of every global batch to `fit`.

    python tests/distributed/jax_training.py OUT INDEX COUNT PORT DEVICES [KILL_AFTER_EPOCH]

Process INDEX of COUNT, with DEVICES CPU devices of its own, trains from the same seed:

1. a digits CNN with structure="channels" for `CHANNEL_EPOCHS` epochs: masks into
   OUT/channels{INDEX}.npz;
2. a model whose layers are pruned unstructured, in 1x4 blocks and 2:4 (N:M), with
   `UpdatePruningStep` and `ep.BackupAndRestore(OUT/backup)` for `EPOCHS` epochs (resuming from
   the backup when there is one): masks after epoch 2 into OUT/after2_{INDEX}.npz, at the end
   into OUT/final{INDEX}.npz. With KILL_AFTER_EPOCH it SIGKILLs itself after that epoch (no
   cleanup, as a lost machine), leaving the backup to resume from.
"""

import os
import signal
import sys

GLOBAL_BATCH = 48  # divisible by 1, 2 and 3 processes
SAMPLES = 960  # 20 steps per epoch
EPOCHS = 4
CHANNEL_EPOCHS = 2


def main(out, index, count, port, devices, kill_after_epoch=None):
    index, count = int(index), int(count)
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    os.environ["KERAS_BACKEND"] = "jax"
    import keras
    import numpy as np

    import edgeprune as ep
    from edgeprune.sparsity.wrapper import pruning_wrappers

    ep.start_data_parallel(f"127.0.0.1:{port}", count, index)
    assert (ep.process_index(), ep.process_count()) == (index, count)
    (x, y), _ = ep.load_digits()
    # Each process feeds its own share of every global batch.
    x, y = ep.process_share(x[:SAMPLES], GLOBAL_BATCH), ep.process_share(y[:SAMPLES], GLOBAL_BATCH)
    share = GLOBAL_BATCH // count

    def masks_of(model):
        return [np.asarray(mask) for wrapper in pruning_wrappers(model) for mask in wrapper.masks]

    def compiled(model):
        model.compile(keras.optimizers.SGD(0.1),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    steps = SAMPLES // GLOBAL_BATCH
    schedule = ep.PolynomialDecay(0.0, 0.75, 0, 3 * steps, frequency=10)

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    hidden = keras.layers.Conv2D(16, 3, activation="relu")(hidden)
    hidden = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(hidden))
    cnn = keras.Model(inputs, keras.layers.Dense(10)(hidden))
    channels = compiled(ep.prune_low_magnitude(
        cnn, structure="channels", pruning_schedule=ep.PolynomialDecay(0.0, 0.5, 0, steps, frequency=10)))
    channels.fit(x, y, batch_size=share, epochs=CHANNEL_EPOCHS, shuffle=False, verbose=0,
                 callbacks=[ep.UpdatePruningStep()])
    np.savez(os.path.join(out, f"channels{index}.npz"), *masks_of(channels))

    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Flatten()(inputs)
    for options in ({}, {"block_size": (1, 4)}, {"sparsity_m_by_n": (2, 4)}):
        hidden = ep.prune_low_magnitude(keras.layers.Dense(32, activation="relu"),
                                        pruning_schedule=schedule, **options)(hidden)
    mixed = compiled(keras.Model(inputs, keras.layers.Dense(10)(hidden)))

    class SaveMasks(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == 2:
                np.savez(os.path.join(out, f"after2_{index}.npz"), *masks_of(self.model))
            if kill_after_epoch is not None and epoch + 1 == int(kill_after_epoch):
                os.kill(os.getpid(), signal.SIGKILL)

    # The callbacks run in list order: the backup is written before the kill.
    mixed.fit(x, y, batch_size=share, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[ep.UpdatePruningStep(), ep.BackupAndRestore(os.path.join(out, "backup")),
                         SaveMasks()])
    step = int(np.asarray(pruning_wrappers(mixed)[0].pruning_step))
    np.savez(os.path.join(out, f"final{index}.npz"), *masks_of(mixed), step=step)


if __name__ == "__main__":
    main(*sys.argv[1:])
