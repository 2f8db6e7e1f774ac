"""Pruning on several JAX processes or hosts: `keras.distribution.DataParallel` over every
device of every process, the processes joined by `jax.distributed`.

Each process feeds its share of every global batch to `fit`; gradients are averaged over all
devices, so the weights, and the masks every process computes from them, are the same
everywhere. `ep.BackupAndRestore` backs up each epoch (first process only): start the processes
again after a crash, with any number of processes, and training resumes from the last epoch.

On one computer the script starts two processes on 127.0.0.1 itself (about 1 min on 2 cores):

    python examples/multihost_jax.py

On several hosts, run it on each with the first host's address, the number of processes and this
one's index (the same global batch whatever the count):

    python examples/multihost_jax.py host1:12345 2 0      # on host1
    python examples/multihost_jax.py host1:12345 2 1      # on host2

Only the first process prints and writes runs/multihost_jax/pruned.keras.
"""

import os
import socket
import subprocess
import sys

os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported

import edgeprune as ep

OUT = "runs/multihost_jax"
PROCESSES = 2
GLOBAL_BATCH = 64
EPOCHS = 6


def start_local_processes(count):
    """Runs this script `count` times, the processes meeting on a free port of 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        coordinator = f"127.0.0.1:{server.getsockname()[1]}"
    processes = [subprocess.Popen([sys.executable, sys.argv[0], coordinator, str(count),
                                   str(index)]) for index in range(count)]
    try:
        codes = [process.wait(timeout=600) for process in processes]
    finally:
        for process in processes:
            process.kill()
    return max(abs(code) for code in codes)


def train(coordinator, count, index):
    import jax
    import keras
    from models import accuracy, digits_cnn

    # Joins the processes (gloo collectives on CPUs) and sets DataParallel over every device of
    # every process, each process giving its own share of every global batch.
    ep.start_data_parallel(coordinator, count, index)
    (x, y), (test_x, test_y) = ep.load_digits()
    steps = len(x) // GLOBAL_BATCH  # global batches per epoch (the last, partial one dropped)
    x, y = ep.process_share(x, GLOBAL_BATCH), ep.process_share(y, GLOBAL_BATCH)

    keras.utils.set_random_seed(0)  # the same initial weights in every process
    schedule = ep.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=(EPOCHS - 2) * steps,
                                  frequency=10)
    model = ep.prune_low_magnitude(digits_cnn(), pruning_schedule=schedule)
    model.compile(keras.optimizers.Adam(2e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=GLOBAL_BATCH // count, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[ep.UpdatePruningStep(), ep.BackupAndRestore(f"{OUT}/backup")])

    # Under the distribution, creating a variable is a collective every process must join: leave
    # it before the first process alone strips, evaluates and saves.
    keras.distribution.set_distribution(None)
    if ep.is_first_process():
        final = ep.strip_pruning(model)
        print(f"{ep.process_count()} processes, {len(jax.devices())} devices: "
              f"accuracy {accuracy(final, test_x, test_y):.4f}")
        for row in ep.sparsity_report(final):
            print(f"{row['layer']:>12} {row['weight']:>8} sparsity {row['sparsity']:.1%}")
        os.makedirs(OUT, exist_ok=True)
        final.save(f"{OUT}/pruned.keras")
        print(f"saved {OUT}/pruned.keras")


if __name__ == "__main__":
    if len(sys.argv) == 1:
        sys.exit(start_local_processes(PROCESSES))
    train(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
