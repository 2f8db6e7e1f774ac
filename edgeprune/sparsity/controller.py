"""`PruningController`: counts training steps and recomputes masks when schedules say so.

It is the engine behind the `UpdatePruningStep` callback and can drive a custom training loop
directly (tfmot #271):

    controller = ep.PruningController(pruned_model)
    controller.begin()
    for epoch in range(epochs):
        for x, y in dataset:
            controller.step()          # before the batch's forward pass
            train_step(x, y)
        controller.end_epoch()         # zeros baked into the variables: checkpoints are sparse
"""

import weakref

from keras import ops

from edgeprune.sparsity.granularity import get_granularity
from edgeprune.sparsity.wrapper import pruning_wrappers


class PruningController:
    """Steps the wrappers of `model` and updates their masks at pruning steps."""

    def __init__(self, model):
        self.model = model
        self._maskers = {}
        self.wrappers = pruning_wrappers(model)
        if not self.wrappers:
            raise ValueError("The model has no pruning wrappers: build it with "
                             "edgeprune.prune_low_magnitude(...) before training with pruning.")
        self.current_step = -1

    def begin(self):
        """Starts a fresh model at step 0 and keeps the step of a restored one."""
        steps = [int(ops.convert_to_numpy(w.pruning_step)) for w in self.wrappers]
        self.current_step = max(0, max(steps))
        # The step variables are written lazily (at pruning steps, epoch ends and saves): an
        # eager assign per wrapper per batch would cost more than the masking itself.
        owner = weakref.ref(self)
        for wrapper in self.wrappers:
            wrapper.step_owner = owner
        self.sync_steps()

    def step(self):
        """Advances one training step (the first batch is step 1) and prunes if it is due."""
        if self.current_step < 0:
            self.begin()
        self.current_step += 1
        self.update_masks()

    def sync_steps(self):
        """Writes the current step into every wrapper's `pruning_step` variable."""
        for wrapper in self.wrappers:
            wrapper.pruning_step.assign(self.current_step)

    def end_epoch(self):
        """Writes `weight * mask` into the variables, so saved weights hold the zeros."""
        self.sync_steps()
        for wrapper in self.wrappers:
            for weight, value in zip(wrapper.pruned_weights, wrapper.masked_weight_values()):
                weight.assign(value)

    def update_masks(self, force=False):
        """Recomputes the masks of every wrapper whose schedule prunes at the current step.

        Due wrappers are handed to their granularity's masker together, so a granularity that
        ranks across layers sees all of them. `force=True` prunes every wrapper now (one-shot).
        """
        step = self.current_step
        due = {}
        for wrapper in self.wrappers:
            granularity = get_granularity(wrapper.granularity)
            if (force or wrapper.pruning_schedule.should_prune(step)
                    or (step == 1 and granularity.prunes_at_first_step(
                        wrapper.granularity_options))):
                due.setdefault(wrapper.granularity, []).append(wrapper)
        if not due:
            return
        self.sync_steps()
        for name, wrappers in due.items():
            self.masker(name).update(wrappers, [w.pruning_schedule(step)[1] for w in wrappers])

    def masker(self, granularity):
        """The mask computer of one granularity, built once per controller (channel pruning
        builds the model's channel graph there)."""
        if granularity not in self._maskers:
            self._maskers[granularity] = get_granularity(granularity).masker(self.model)
        return self._maskers[granularity]
