"""2:4 sparsity on the digits CNN, conv1 left dense (recipes/nm_2x4.yaml).

About 30 s on 2 CPU cores; it prints a line per training epoch.

    python examples/nm_2x4.py
"""

import numpy as np

import edgeprune as ep
from models import accuracy, compiled, digits_cnn, progress

(x, y), (test_x, test_y) = ep.load_digits()
model = compiled(digits_cnn(), 2e-3)
model.fit(x, y, epochs=10, batch_size=32, verbose=0, callbacks=[progress("dense")])

pruned = ep.prune_low_magnitude(model, sparsity_m_by_n=(2, 4), skip_layers=["conv1"])
compiled(pruned, 5e-4).fit(x, y, epochs=4, batch_size=32, verbose=0,
                           callbacks=[ep.UpdatePruningStep(), progress("2:4 pruning")])
final = ep.strip_pruning(pruned)
kernel = final.get_layer("fc").kernel.numpy()  # (inputs, units): groups of 4 inputs per unit
zeros_per_group = (kernel.T.reshape(-1, 4) == 0).sum(axis=1)
print(f"every group of 4 has >= 2 zeros: {bool(np.all(zeros_per_group >= 2))}; "
      f"accuracy {accuracy(final, test_x, test_y):.4f}")
ep.export_tflite(final, "runs/nm_2x4_example.tflite", quantize="int8", representative_data=x[:200])
