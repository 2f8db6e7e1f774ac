"""Block 1x4 pruning of the 1x1 convolutions of a CNN laid out for XNNPACK sparse inference
(recipes/block_1x4_xnnpack.yaml). XNNPACK uses the sparsity on ARM only.

About a minute on 2 CPU cores; it prints a line per training epoch.

    python examples/block_1x4_xnnpack.py
"""

import edgeprune as ep
from models import compiled, digits_rgb, progress, xnnpack_cnn

train, test = digits_rgb(size=32, batch_size=16)
model = compiled(xnnpack_cnn(), 2e-3)
model.fit(train, epochs=8, verbose=0, callbacks=[progress("dense")])

steps = int(train.cardinality())
pruned = ep.prune_low_magnitude(
    model, block_size=(1, 4), pruning_policy=ep.PruneForLatencyOnXNNPack(),
    pruning_schedule=ep.PolynomialDecay(0.0, 0.7, begin_step=0, end_step=5 * steps, frequency=20))
compiled(pruned, 1e-3).fit(train, epochs=10, verbose=0,
                           callbacks=[ep.UpdatePruningStep(), progress("pruning")])
final = ep.strip_pruning(pruned)
print(f"test accuracy {compiled(final).evaluate(test, verbose=0)[1]:.4f}")
tflite = ep.export_tflite(final, "runs/block_1x4_example.tflite", sparse_storage=True)
print(ep.size_report(tflite))
