"""Pruning on several TensorFlow workers (`MultiWorkerMirroredStrategy`), data parallel.

Each worker trains on its share of every batch; the strategy all-reduces the gradients, so the
weights, and the masks every worker computes from them, are the same everywhere. Two ways to
train, both pruning the digits CNN to 80%:

- a custom loop driving `ep.PruningController` (TensorFlow's own strategy);
- `fit` with `ep.UpdatePruningStep()`, under `ep.multi_worker_strategy()` (Keras 3.15's `fit`
  fails under TensorFlow's strategy as it is) with `ep.BackupAndRestore`: start the workers
  again after a crash and training resumes from the last epoch, on any number of workers.

On one computer the script starts two workers on 127.0.0.1 itself (about 1 min on 2 cores):

    python examples/multiworker_tf.py          # custom loop
    python examples/multiworker_tf.py fit      # fit

On several hosts, run it on each one with TF_CONFIG naming all workers and this one's index:

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' python examples/multiworker_tf.py

Only the first worker prints and writes runs/multiworker_tf/pruned.keras.
"""

import json
import os
import socket
import subprocess
import sys

import edgeprune as ep  # before keras: TensorFlow's import is then quiet

OUT = "runs/multiworker_tf"
WORKERS = 2
GLOBAL_BATCH = 64
EPOCHS = 6


def start_local_workers(count):
    """Runs this script `count` times with TF_CONFIG for workers on free ports of 127.0.0.1."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = [subprocess.Popen([sys.executable, *sys.argv], env=dict(
        os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                          "task": {"type": "worker", "index": index}})))
               for index in range(count)]
    try:
        codes = [worker.wait(timeout=600) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    return max(abs(code) for code in codes)


def train(use_fit):
    import keras
    import tensorflow as tf
    from models import accuracy, digits_cnn

    # First thing: the strategy starts TensorFlow's collective runtime.
    strategy = ep.multi_worker_strategy()
    (x, y), (test_x, test_y) = ep.load_digits()
    steps = len(x) // GLOBAL_BATCH  # global batches per epoch (the last, partial one dropped)
    train_data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(
        GLOBAL_BATCH, drop_remainder=True)
    schedule = ep.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=(EPOCHS - 2) * steps,
                                  frequency=10)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = ep.prune_low_magnitude(digits_cnn(), pruning_schedule=schedule)
        optimizer = keras.optimizers.Adam(2e-3)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    if use_fit:
        model.compile(optimizer, loss)
        model.fit(train_data, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[
            ep.UpdatePruningStep(), ep.BackupAndRestore(f"{OUT}/backup")])
    else:
        per_example = keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                 reduction="none")

        @tf.function
        def train_step(batch_x, batch_y):
            def replica_step(batch_x, batch_y):
                with tf.GradientTape() as tape:
                    value = tf.nn.compute_average_loss(
                        per_example(batch_y, model(batch_x, training=True)),
                        global_batch_size=GLOBAL_BATCH)
                gradients = tape.gradient(value, model.trainable_variables)
                optimizer.apply_gradients(zip(gradients, model.trainable_variables))

            strategy.run(replica_step, args=(batch_x, batch_y))

        controller = ep.PruningController(model)
        controller.begin()
        for _ in range(EPOCHS):
            for batch_x, batch_y in strategy.experimental_distribute_dataset(train_data):
                controller.step()  # masks are recomputed here, on every worker alike
                train_step(batch_x, batch_y)
            controller.end_epoch()

    if ep.is_first_process():
        final = ep.strip_pruning(model)
        print(f"{ep.process_count()} workers, {'fit' if use_fit else 'custom loop'}: "
              f"accuracy {accuracy(final, test_x, test_y):.4f}")
        for row in ep.sparsity_report(final):
            print(f"{row['layer']:>12} {row['weight']:>8} sparsity {row['sparsity']:.1%}")
        os.makedirs(OUT, exist_ok=True)
        final.save(f"{OUT}/pruned.keras")
        print(f"saved {OUT}/pruned.keras")


if __name__ == "__main__":
    if "TF_CONFIG" not in os.environ:
        sys.exit(start_local_workers(WORKERS))
    train(use_fit="fit" in sys.argv[1:])
