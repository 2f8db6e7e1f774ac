"""Prune to 75%, quantization-aware int8, benchmark on a Raspberry Pi over SSH
(recipes/raspberry_pi.yaml).

    python examples/raspberry_pi.py pi@raspberrypi.local

First, in a few seconds, it checks that the board answers: an SSH login with your key (host key
in ~/.ssh/known_hosts) and python3 with ai-edge-litert there, by benchmarking a tiny model; only
then does it train (about 1 minute on 2 cores) and benchmark the dense and pruned int8 models.
"""

import os
import sys

import device_bench
import edgeprune as ep
import keras
from models import compiled, digits_cnn, progress

host = sys.argv[1] if len(sys.argv) > 1 else "pi@raspberrypi.local"
OUT = "runs/pi_example"
os.makedirs(OUT, exist_ok=True)

# The board first: an unreachable Pi should cost seconds, not a training run.
print(f"checking ssh://{host} ...", flush=True)
ep.export_tflite(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), f"{OUT}/probe.tflite")
try:
    device_bench.benchmark(f"{OUT}/probe.tflite", target=f"ssh://{host}", timeout=10, num_runs=1,
                           min_secs=0.01, warmup_runs=1, warmup_min_secs=0.01)
except device_bench.BenchError as error:
    sys.exit(f"the board is not ready: {error}")
print("the board answers; training", flush=True)

(x, y), _ = ep.load_digits()
model = compiled(digits_cnn(filters=32, dense_units=128), 2e-3)
model.fit(x, y, epochs=10, batch_size=32, verbose=0, callbacks=[progress("dense")])

steps = len(x) // 32 + 1
pruned = ep.prune_low_magnitude(model, skip_layers=["classifier"], pruning_schedule=ep.PolynomialDecay(
    0.0, 0.75, begin_step=0, end_step=4 * steps, frequency=10))
compiled(pruned, 5e-4).fit(x, y, epochs=6, batch_size=32, verbose=0,
                           callbacks=[ep.UpdatePruningStep(), progress("pruning")])
qat = compiled(ep.quantize_model(ep.strip_pruning(pruned)), 1e-4)  # int8-aware, zeros kept
qat.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[progress("quantization-aware")])
ep.export_tflite(model, f"{OUT}/dense.tflite")
ep.export_tflite(qat, f"{OUT}/pruned_int8.tflite", quantize="int8", representative_data=x[:200])
result = device_bench.benchmark([f"{OUT}/dense.tflite", f"{OUT}/pruned_int8.tflite"],
                                target=f"ssh://{host}", num_threads=4)
for model_result in result.models:
    print(f"{model_result.graph}: median {model_result.latency.p50_us:.0f} us")
print(f"int8 pruned / dense latency: {result.comparisons[0].ratio.median:.2f}")
