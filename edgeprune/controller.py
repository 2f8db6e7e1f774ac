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

from edgeprune import masks as mask_lib
from edgeprune.rebuild import leaf_layers
from edgeprune.structured.gradual import ChannelMasker
from edgeprune.wrapper import PruneLowMagnitude, apply_mask


def pruning_wrappers(model):
    """Every `PruneLowMagnitude` layer inside `model`, nested models included, each once."""
    return [layer for layer in leaf_layers(model) if isinstance(layer, PruneLowMagnitude)]


class PruningController:
    """Steps the wrappers of `model` and updates their masks at pruning steps."""

    def __init__(self, model):
        self.model = model
        self._channel_masker = None
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

        N:M wrappers also prune at step 1, as in tfmot. `force=True` prunes every wrapper now
        (one-shot pruning).
        """
        step = self.current_step
        global_group, global_sparsity, synced = [], None, False
        channel_group, channel_sparsity = [], None
        for wrapper in self.wrappers:
            schedule = wrapper.pruning_schedule
            due = force or schedule.should_prune(step) or (wrapper.sparsity_m_by_n and step == 1)
            if not due:
                continue
            if not synced:
                self.sync_steps()
                synced = True
            sparsity = schedule(step)[1]
            if wrapper.channel_pruning:
                channel_group.append(wrapper)
                channel_sparsity = sparsity
            elif wrapper.pruning_scope == "global":
                global_group.append(wrapper)
                global_sparsity = sparsity
            else:
                self._prune_layer(wrapper, sparsity)
        if global_group:
            self._prune_global(global_group, global_sparsity)
        if channel_group:
            self.channel_masker(channel_group[0].channel_pruning).update(channel_group,
                                                                         channel_sparsity)

    def channel_masker(self, options):
        """The `structure="channels"` mask computer, built once from the model's graph."""
        if self._channel_masker is None:
            self._channel_masker = ChannelMasker(self.model, options)
        return self._channel_masker

    @staticmethod
    def _prune_layer(wrapper, sparsity):
        results = []
        for weight in wrapper.pruned_weights:
            value = ops.convert_to_numpy(weight)
            if wrapper.sparsity_m_by_n:
                results.append(mask_lib.m_by_n_mask(value, wrapper.sparsity_m_by_n))
            else:
                results.append(mask_lib.magnitude_mask(value, sparsity, wrapper.block_size,
                                                       wrapper.block_pooling_type))
        _assign(wrapper, results)

    @staticmethod
    def _prune_global(wrappers, sparsity):
        weights = [ops.convert_to_numpy(w) for wrapper in wrappers for w in wrapper.pruned_weights]
        first = wrappers[0]
        results = mask_lib.global_magnitude_masks(weights, sparsity, first.block_size,
                                                  first.block_pooling_type)
        start = 0
        for wrapper in wrappers:
            count = len(wrapper.pruned_weights)
            _assign(wrapper, results[start:start + count])
            start += count


def _assign(wrapper, results):
    for weight, mask_var, threshold_var, (mask, threshold) in zip(
            wrapper.pruned_weights, wrapper.masks, wrapper.thresholds, results):
        mask_var.assign(mask)
        threshold_var.assign(threshold)
        # Zero the pruned values too, so the next ranking starts from what the model computes.
        weight.assign(apply_mask(ops.convert_to_numpy(weight), mask))
