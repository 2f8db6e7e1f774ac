"""Iterative magnitude pruning with weight rewinding (recipes/lottery_ticket.yaml).

Three rounds to 80%, survivors reset to their values 20 batches into round 0; each round's
model, sparsity and accuracy are kept in runs/lottery_ticket_example/imp (run again: resumes).

About 40 s on 2 CPU cores; it prints a line per training epoch.

    python examples/lottery_ticket.py
"""

import edgeprune as ep
from models import accuracy, compiled, digits_cnn, progress

(x, y), (test_x, test_y) = ep.load_digits()
model = compiled(digits_cnn(), 2e-3)
model.fit(x, y, epochs=10, batch_size=32, verbose=0, callbacks=[progress("dense")])


def fine_tune(model, callbacks):  # every round, the dense round 0 included; fresh optimizer
    compiled(model).fit(x, y, epochs=3, batch_size=32, verbose=0,
                        callbacks=[*callbacks, progress("IMP round")])


result = ep.iterative_magnitude_pruning(
    model, fine_tune, lambda m: accuracy(m, test_x, test_y), "runs/lottery_ticket_example/imp",
    rounds=3, final_sparsity=0.8, rewind_step=20, skip_layers=["classifier"])
for r in result.rounds:
    print(f"round {r.round}: sparsity {r.sparsity:.1%}, accuracy {r.metric:.4f}")
tflite = ep.export_tflite(result.model, "runs/lottery_ticket_example/model.tflite",
                          quantize="int8", representative_data=x[:200])
check = ep.validate_tflite(tflite, result.model, test_x, test_y)
print(f"int8 .tflite accuracy {check.tflite_accuracy:.4f}")
