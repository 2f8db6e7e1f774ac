"""Pruning in a plain PyTorch training loop: `torch.optim`, `loss.backward()`, `PruningController`.

On the torch backend a Keras model is a `torch.nn.Module` and its variables are the module's
parameters, updated in place: the optimizer steps them, and the controller writes masks into the
same tensors. The loop only calls `controller.step()` before each batch and
`controller.end_epoch()` after each epoch. The masks are parameters too, with `requires_grad`
off, so the optimizer leaves them alone.

About 15 s on 2 CPU cores:

    KERAS_BACKEND=torch python examples/custom_loop_torch.py [--steps 300]
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import edgeprune as ep  # noqa: E402  (after the backend is chosen)
import torch  # noqa: E402
from models import custom_loop_report, custom_loop_start  # noqa: E402

steps, (x, y), test, pruned = custom_loop_start("torch", __doc__.splitlines()[0])
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

custom_loop_report(pruned, test)
