"""Prune to 75%, quantization-aware int8, benchmark on a Raspberry Pi over SSH
(recipes/raspberry_pi.yaml).

    python examples/raspberry_pi.py pi@raspberrypi.local
"""

import sys

import device_bench
import edgeprune as ep
from models import compiled, digits_cnn

host = sys.argv[1] if len(sys.argv) > 1 else "pi@raspberrypi.local"
(x, y), _ = ep.load_digits()
model = compiled(digits_cnn(filters=32, dense_units=128), 2e-3)
model.fit(x, y, epochs=10, batch_size=32, verbose=0)

steps = len(x) // 32 + 1
pruned = ep.prune_low_magnitude(model, skip_layers=["classifier"], pruning_schedule=ep.PolynomialDecay(
    0.0, 0.75, begin_step=0, end_step=4 * steps, frequency=10))
compiled(pruned, 5e-4).fit(x, y, epochs=6, batch_size=32, verbose=0,
                           callbacks=[ep.UpdatePruningStep()])
qat = compiled(ep.quantize_model(ep.strip_pruning(pruned)), 1e-4)  # int8-aware, zeros kept
qat.fit(x, y, epochs=2, batch_size=32, verbose=0)
ep.export_tflite(model, "runs/pi_example/dense.tflite")
ep.export_tflite(qat, "runs/pi_example/pruned_int8.tflite", quantize="int8",
                 representative_data=x[:200])
result = device_bench.benchmark(["runs/pi_example/dense.tflite", "runs/pi_example/pruned_int8.tflite"],
                                target=f"ssh://{host}", num_threads=4)
for model_result in result.models:
    print(f"{model_result.graph}: median {model_result.latency.p50_us:.0f} us")
print(f"int8 pruned / dense latency: {result.comparisons[0].ratio.median:.2f}")
