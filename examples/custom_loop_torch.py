"""Pruning in a plain PyTorch training loop: `torch.optim`, `loss.backward()`, `PruningController`.

On the torch backend a Keras model is a `torch.nn.Module` and its variables are the module's
parameters, updated in place: the optimizer steps them, and the controller writes masks into the
same tensors. The loop only calls `controller.step()` before each batch and
`controller.end_epoch()` after each epoch. The masks are parameters too, with `requires_grad`
off, so the optimizer leaves them alone.

About 15 s on 2 CPU cores:

    KERAS_BACKEND=torch python examples/custom_loop_torch.py [--steps 300]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import edgeprune as ep  # noqa: E402  (after the backend is chosen)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

if keras.backend.backend() != "torch":
    raise SystemExit(f"This example needs KERAS_BACKEND=torch, not {keras.backend.backend()!r}.")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=300, help="training steps (batches of 32)")
steps = parser.parse_args().steps

(x, y), (test_x, test_y) = ep.load_digits()
model = keras.Sequential([keras.Input((8, 8, 1)),
                          keras.layers.Conv2D(16, 3, activation="relu"),
                          keras.layers.Flatten(), keras.layers.Dense(10)])
pruned = ep.prune_low_magnitude(model, pruning_schedule=ep.PolynomialDecay(
    0.0, 0.8, begin_step=0, end_step=steps * 2 // 3, frequency=10))
optimizer = torch.optim.Adam(pruned.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()
x, y = torch.from_numpy(x), torch.from_numpy(y).long()

controller = ep.PruningController(pruned)
controller.begin()
batches = len(x) // 32
for step in range(steps):
    start = step % batches * 32
    controller.step()                 # before the batch: counts it, prunes when it is due
    loss = loss_fn(pruned(x[start:start + 32], training=True), y[start:start + 32])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if (step + 1) % batches == 0:
        controller.end_epoch()        # zeros written into the weights, as saved files hold them
        print(f"step {step + 1}: loss {loss.item():.3f}")
controller.end_epoch()

final = ep.strip_pruning(pruned)
accuracy = np.mean(np.argmax(final.predict(test_x, verbose=0), -1) == test_y)
print(f"accuracy {accuracy:.4f}")
for row in ep.sparsity_report(final):
    print(f"{row['layer']} {row['weight']} sparsity {row['sparsity']:.1%}")
