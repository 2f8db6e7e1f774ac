"""80% overall with per-layer targets from a sensitivity scan (recipes/sensitivity_80.yaml).

About 30 s on 2 CPU cores; it prints a line per training epoch.

    python examples/sensitivity_80.py
"""

import edgeprune as ep
from models import accuracy, compiled, digits_cnn, progress

(x, y), (test_x, test_y) = ep.load_digits()
model = compiled(digits_cnn(), 2e-3)
model.fit(x, y, epochs=10, batch_size=32, verbose=0, callbacks=[progress("dense")])

# Scored on training samples, so the test split stays unseen until the end.
table = ep.sensitivity_scan(model, lambda m: accuracy(m, x[:500], y[:500]),
                            sparsities=(0.3, 0.5, 0.7, 0.8, 0.9, 0.95))
allocation = ep.allocate(table, target=0.8, skip=["classifier"])
print({name: round(s, 2) for name, s in allocation.sparsity.items()})

steps = len(x) // 32 + 1
pruned = ep.prune_low_magnitude(model, pruning_schedule=allocation.schedules(
    ep.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=4 * steps, frequency=10)))
compiled(pruned).fit(x, y, epochs=6, batch_size=32, verbose=0,
                     callbacks=[ep.UpdatePruningStep(), progress("pruning")])
final = ep.strip_pruning(pruned)
print(f"accuracy {accuracy(model, test_x, test_y):.4f} dense, "
      f"{accuracy(final, test_x, test_y):.4f} pruned")
