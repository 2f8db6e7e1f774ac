"""Pruning in a custom JAX training loop: a `jax.jit` train step, `PruningController` between steps.

A jitted JAX step is a pure function: the model's weights, its non-trainable variables (the
pruning masks among them) and the optimizer's variables go in as arrays and come out updated; the
Keras variables are not touched while the loop runs. The controller, in turn, computes masks from
the Keras variables and writes them there. So at each step where it prunes (it says so with
`prunes_next_step()`), the loop puts its state into the variables, lets the controller step, and
reads the state back, new masks and zeroed weights included. Other steps only count.

About 20 s on 2 CPU cores:

    KERAS_BACKEND=jax python examples/custom_loop_jax.py [--steps 300]
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import edgeprune as ep  # noqa: E402  (after the backend is chosen)
import jax  # noqa: E402
import keras  # noqa: E402
from models import custom_loop_report, custom_loop_start  # noqa: E402

steps, (x, y), test, pruned = custom_loop_start("jax", __doc__.splitlines()[0])
optimizer = keras.optimizers.Adam(1e-3)
optimizer.build(pruned.trainable_variables)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def loss_and_updates(trainable, non_trainable, xb, yb):
    # The wrappers multiply each weight by its mask, read from `non_trainable`.
    logits, non_trainable = pruned.stateless_call(trainable, non_trainable, xb, training=True)
    return loss_fn(yb, logits), non_trainable


@jax.jit
def train_step(state, xb, yb):
    trainable, non_trainable, optimizer_variables = state
    (loss, non_trainable), grads = jax.value_and_grad(loss_and_updates, has_aux=True)(
        trainable, non_trainable, xb, yb)
    trainable, optimizer_variables = optimizer.stateless_apply(optimizer_variables, grads,
                                                               trainable)
    return (trainable, non_trainable, optimizer_variables), loss


def state_from_variables():
    return ([v.value for v in pruned.trainable_variables],
            [v.value for v in pruned.non_trainable_variables],
            [v.value for v in optimizer.variables])


def state_into_variables(state):
    for variables, values in zip((pruned.trainable_variables, pruned.non_trainable_variables,
                                  optimizer.variables), state):
        for variable, value in zip(variables, values):
            variable.assign(value)


controller = ep.PruningController(pruned)
controller.begin()
state = state_from_variables()
batches = len(x) // 32
for step in range(steps):
    start = step % batches * 32
    if controller.prunes_next_step():
        state_into_variables(state)   # the controller ranks the trained weights...
        controller.step()
        state = state_from_variables()  # ...and the next steps use its new masks
    else:
        controller.step()             # counts the step only
    state, loss = train_step(state, x[start:start + 32], y[start:start + 32])
    if (step + 1) % batches == 0:
        print(f"step {step + 1}: loss {float(loss):.3f}")
state_into_variables(state)
controller.end_epoch()  # zeros written into the variables: what strip_pruning and saving read

custom_loop_report(pruned, test)
