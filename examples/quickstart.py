"""Quickstart in Python: the flow of recipes/quickstart.yaml written against the API.

Train a digits CNN, prune it to 80% while fine-tuning (sparsity curves for TensorBoard in
runs/quickstart_example/logs), strip it, export int8 TFLite, compare sizes and time it.

About 30 s on 2 CPU cores; it prints a line per training epoch.

    python examples/quickstart.py
"""

import os

import device_bench
import edgeprune as ep
from models import accuracy, compiled, digits_cnn, progress

OUT = "runs/quickstart_example"
(x, y), (test_x, test_y) = ep.load_digits()

model = compiled(digits_cnn(), 2e-3)
model.fit(x, y, epochs=10, batch_size=32, verbose=0, callbacks=[progress("dense")])
print(f"dense accuracy {accuracy(model, test_x, test_y):.4f}")

steps = len(x) // 32 + 1  # batches per epoch
pruned = ep.prune_low_magnitude(
    model, skip_layers=["classifier"],
    pruning_schedule=ep.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=4 * steps, frequency=10))
compiled(pruned).fit(x, y, epochs=6, batch_size=32, verbose=0,
                     callbacks=[ep.UpdatePruningStep(), ep.PruningSummaries(f"{OUT}/logs"),
                                progress("pruning")])
final = ep.strip_pruning(pruned)
for row in ep.sparsity_report(final):
    print(f"{row['layer']:>12} {row['weight']:>8} sparsity {row['sparsity']:.1%}")

os.makedirs(OUT, exist_ok=True)
tflite = ep.export_tflite(final, f"{OUT}/model.tflite", quantize="int8", representative_data=x[:200])
check = ep.validate_tflite(tflite, final, test_x, test_y)
print(f"int8 .tflite accuracy {check.tflite_accuracy:.4f}; {ep.size_report(tflite)}")
result = device_bench.benchmark(f"{OUT}/model.tflite", target="local", num_threads=1)
print(f"median latency {result.models[0].latency.p50_us:.1f} us")
