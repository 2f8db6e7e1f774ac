"""Training throughput of pruning on 1, 2 and 3 JAX processes (`keras.distribution.DataParallel`,
processes joined by `jax.distributed` on 127.0.0.1, CPU collectives through gloo), each process
with one CPU device, the same global batch whatever the count.

    python benchmarks/distributed_throughput.py [--rounds 2] [--epochs 3] [--repeat 2]

Each round starts every process count in turn, fresh processes each time, the order alternating
between rounds (1 2 3, 3 2 1, ...), so counts are compared on the same noisy machine. Each run
trains the digits CNN pruned to 80% with `fit` and `UpdatePruningStep`: one warm-up epoch
(compilation), then `--epochs` timed epochs; the first process reports its median epoch time.
Throughput is global samples per second; the speed-up is against one process in the same round,
then the median over rounds. Process start-up (imports, `jax.distributed` connection) is not
counted; it is reported apart.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_BATCH = 48  # divisible by 1, 2 and 3


def worker(out, index, count, port, epochs, repeat):
    started = time.perf_counter()
    os.environ["KERAS_BACKEND"] = "jax"
    import keras
    import numpy as np

    sys.path.insert(0, ROOT)
    import edgeprune as ep
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    from models import digits_cnn

    ep.start_data_parallel(f"127.0.0.1:{port}", count, index)
    (x, y), _ = ep.load_digits()
    # Repeating the training split gives epochs of a few dozen global steps.
    x, y = np.concatenate([x] * repeat), np.concatenate([y] * repeat)
    steps = len(x) // GLOBAL_BATCH
    share = GLOBAL_BATCH // count
    x, y = ep.process_share(x, GLOBAL_BATCH), ep.process_share(y, GLOBAL_BATCH)
    keras.utils.set_random_seed(0)
    model = ep.prune_low_magnitude(digits_cnn(), pruning_schedule=ep.PolynomialDecay(
        0.0, 0.8, begin_step=0, end_step=steps * epochs, frequency=10))
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ready = time.perf_counter() - started

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    timer = EpochTimes()
    model.fit(x, y, batch_size=share, epochs=1 + epochs, shuffle=False, verbose=0,
              callbacks=[ep.UpdatePruningStep(), timer])
    if ep.is_first_process():
        epoch_s = statistics.median(timer.times[1:])
        with open(out, "w") as f:
            json.dump({"processes": count, "epoch_s": epoch_s, "steps": steps,
                       "samples_per_s": steps * GLOBAL_BATCH / epoch_s, "startup_s": ready}, f)


def run(count, epochs, repeat):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "result.json")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        processes = [subprocess.Popen(
            [sys.executable, __file__, "--worker", out, str(index), str(count), str(port),
             str(epochs), str(repeat)], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True) for index in range(count)]
        try:
            errors = [process.communicate(timeout=900)[1] for process in processes]
        finally:
            for process in processes:
                process.kill()
        if any(process.returncode for process in processes):
            raise SystemExit(f"{count} processes failed:\n" + "\n".join(e[-3000:] for e in errors))
        with open(out) as f:
            return json.load(f)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        out, *numbers = sys.argv[2:]
        return worker(out, *map(int, numbers))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    results = {count: [] for count in args.counts}
    for round_index in range(args.rounds):
        order = args.counts if round_index % 2 == 0 else args.counts[::-1]
        for count in order:
            result = run(count, args.epochs, args.repeat)
            results[count].append(result)
            print(f"round {round_index + 1}: {count} process(es): {result['epoch_s']:.2f} s per "
                  f"epoch of {result['steps']} steps, {result['samples_per_s']:.0f} samples/s, "
                  f"start-up {result['startup_s']:.1f} s", flush=True)
    print(f"\n{os.cpu_count()} CPU cores; global batch {GLOBAL_BATCH}; medians over "
          f"{args.rounds} round(s)")
    print("| processes | samples/s | speed-up vs 1 process (same round) | start-up s |")
    print("|---|---|---|---|")
    base = results[args.counts[0]]
    for count in args.counts:
        rates = [r["samples_per_s"] for r in results[count]]
        ratios = [r["samples_per_s"] / b["samples_per_s"] for r, b in zip(results[count], base)]
        startup = statistics.median(r["startup_s"] for r in results[count])
        print(f"| {count} | {statistics.median(rates):.0f} | {statistics.median(ratios):.2f}x | "
              f"{startup:.1f} |")


if __name__ == "__main__":
    main()
