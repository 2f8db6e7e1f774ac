"""Gradual unstructured pruning to 80% with a gentler first layer (recipes/unstructured_80.yaml).

Per-layer settings: prune conv1 with its own schedule first; a second call wraps the rest
(already wrapped layers are left alone). Sparse storage shrinks the .tflite itself.

About 40 s on 2 CPU cores; it prints a line per training epoch.

    python examples/unstructured_80.py
"""

import edgeprune as ep
from models import accuracy, compiled, digits_cnn, progress

(x, y), (test_x, test_y) = ep.load_digits()
model = compiled(digits_cnn(filters=32, dense_units=128), 2e-3)
model.fit(x, y, epochs=15, batch_size=32, verbose=0, callbacks=[progress("dense")])

steps = len(x) // 32 + 1
others = [layer.name for layer in model.layers if layer.name != "conv1"]
pruned = ep.prune_low_magnitude(model, skip_layers=others, pruning_schedule=ep.PolynomialDecay(
    0.0, 0.5, begin_step=steps, end_step=8 * steps, frequency=20))
pruned = ep.prune_low_magnitude(pruned, skip_layers=["classifier"], pruning_schedule=ep.PolynomialDecay(
    0.0, 0.8, begin_step=steps, end_step=8 * steps, frequency=20))
compiled(pruned, 5e-4).fit(x, y, epochs=10, batch_size=32, verbose=0,
                           callbacks=[ep.UpdatePruningStep(), progress("pruning")])
final = ep.strip_pruning(pruned)
print(f"accuracy {accuracy(model, test_x, test_y):.4f} dense, "
      f"{accuracy(final, test_x, test_y):.4f} pruned")
dense, sparse = ep.export_tflite(model), ep.export_tflite(final, sparse_storage=True)
print(f"dense .tflite: {ep.size_report(dense)}\npruned, sparse storage: {ep.size_report(sparse)}")
