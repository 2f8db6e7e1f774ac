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

from edgeprune.autodiff import masks_gradients
from edgeprune.sparsity import optimizer_state
from edgeprune.sparsity.granularity import get_granularity
from edgeprune.sparsity.wrapper import apply_mask_in_place, pruned_nonzero, pruning_wrappers


def sync_from_trainer(model):
    """Puts the values JAX's `fit` keeps in its own state back into `model`'s variables (between
    batches they hold none); the trainer then reads the variables, new masks included, before its
    next batch. Elsewhere the variables are the state: nothing to do."""
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


class PruningController:
    """Steps the wrappers of `model` and updates their masks at pruning steps.

    `optimizer`: the optimizer that trains `model` with every training step, if it is one that
    keeps a zero weight at zero (`edgeprune.sparsity.optimizer_state`): the controller then keeps
    the pruned weights at 0 in the variables, zeroing their optimizer state when a mask update
    prunes them, and the wrappers' training steps mask gradients instead of weights (one pass
    over each kernel less, forward and backward; TensorFlow and JAX, where the wrappers multiply
    otherwise). Steps traced before `begin()` keep the product. `UpdatePruningStep` passes the
    model's optimizer in `fit`.
    """

    def __init__(self, model, optimizer=None):
        self.model = model
        self.optimizer = (optimizer if optimizer is not None and masks_gradients()
                          and optimizer_state.keeps_pruned_weights_at_zero(optimizer) else None)
        self._maskers = {}
        # Wrappers due for masks while still unbuilt (a model without an Input is built by its
        # first batch): masked at the first step after that batch built them.
        self._unmasked = set()
        self.wrappers = pruning_wrappers(model)
        if not self.wrappers:
            raise ValueError("The model has no pruning wrappers: build it with "
                             "edgeprune.prune_low_magnitude(...) before training with pruning.")
        self.current_step = -1

    def begin(self):
        """Starts a fresh model at step 0 and keeps the step of a restored one."""
        sync_from_trainer(self.model)
        steps = [int(ops.convert_to_numpy(w.pruning_step)) for w in self.built_wrappers()]
        self.current_step = max([0, *steps])
        # The step variables are written lazily (at pruning steps, epoch ends and saves): an
        # eager assign per wrapper per batch would cost more than the masking itself.
        owner = weakref.ref(self)
        for wrapper in self.wrappers:
            wrapper.step_owner = owner
        self.sync_steps()
        if self.optimizer is not None:
            # A restored or re-weighted model may hold its pruned weights again: bake all anew.
            self.end()
            for wrapper in self.wrappers:
                self.keep_masked(wrapper, bake=True)
            self.bake_masks()

    def end(self):
        """Training ends: the wrappers multiply by their masks again outside it."""
        for wrapper in self.wrappers:
            wrapper.kept_masked = False

    def keep_masked(self, wrapper, bake=False):
        """Zeroes the optimizer state of `wrapper`'s pruned weights (`bake`: the weights too) and
        has its training steps read the variables; a wrapper whose granularity accumulates
        gradient terms (Taylor) keeps the product its backward pass hooks into. Needs its
        variables: else at its first mask."""
        if not wrapper.built or wrapper.gradient_accumulators:
            return
        for weight, mask in zip(wrapper.pruned_weights, wrapper.masks):
            slots = optimizer_state.weight_slots(self.optimizer, weight)
            apply_mask_in_place([weight, *slots] if bake else slots, mask)
        wrapper.kept_masked = True

    def step(self):
        """Advances one training step (the first batch is step 1) and prunes if it is due."""
        if self.current_step < 0:
            self.begin()
        self.current_step += 1
        self.update_masks()

    def prunes_next_step(self):
        """Whether the next `step()` reads and writes the model's variables (it recomputes masks,
        or starts the controller). A loop that keeps the variables' values elsewhere, as a jitted
        JAX step's state, puts them back into the variables first and reads them again after
        (`examples/custom_loop_jax.py`)."""
        step = self.current_step + 1
        return self.current_step < 0 or any(
            id(wrapper) in self._unmasked or self._is_due(wrapper, step)
            for wrapper in self.wrappers)

    def built_wrappers(self):
        """The wrappers that have variables (all of them once a first batch has run)."""
        return [wrapper for wrapper in self.wrappers if wrapper.built]

    def sync_steps(self):
        """Writes the current step into every wrapper's `pruning_step` variable."""
        step = ops.convert_to_tensor(self.current_step, "int32")  # one host-to-device copy
        for wrapper in self.built_wrappers():
            wrapper.pruning_step.assign(step)

    def end_epoch(self):
        """Writes `weight * mask` into the variables, so saved weights hold the zeros."""
        sync_from_trainer(self.model)
        self.sync_steps()
        self.check_kept_masked()
        self.bake_masks()

    def bake_masks(self):
        """Zeroes every pruned weight in its variable (those kept at 0 already hold +0.0)."""
        for wrapper in self.built_wrappers():
            if wrapper.kept_masked:
                continue
            for weight, mask in zip(wrapper.pruned_weights, wrapper.masks):
                apply_mask_in_place([weight], mask)

    def update_masks(self, force=False):
        """Recomputes the masks of every wrapper whose schedule prunes at the current step.

        Due wrappers are handed to their granularity's masker together, so a granularity that
        ranks across layers sees all of them. `force=True` prunes every wrapper now (one-shot).
        """
        step = self.current_step
        due = {}
        for wrapper in self.wrappers:
            if not (force or id(wrapper) in self._unmasked or self._is_due(wrapper, step)):
                continue
            if not wrapper.built:
                self._unmasked.add(id(wrapper))
                continue
            self._unmasked.discard(id(wrapper))
            due.setdefault(wrapper.granularity, []).append(wrapper)
        if not due:
            return
        sync_from_trainer(self.model)
        self.sync_steps()
        for name, wrappers in due.items():
            self.masker(name).update(
                wrappers, [w.pruning_schedule.decision(step)[1] for w in wrappers])
            if self.optimizer is not None:
                for wrapper in wrappers:
                    self.keep_masked(wrapper)

    def check_kept_masked(self):
        """Raises if a weight kept at 0 for training moved (something other than the optimizer
        given wrote it): training steps since the last mask update counted it."""
        kept = [(weight, mask) for wrapper in self.built_wrappers() if wrapper.kept_masked
                for weight, mask in zip(wrapper.pruned_weights, wrapper.masks)]
        if not kept:
            return
        # One read back to the host for all of them.
        moved = ops.convert_to_numpy(ops.stack([pruned_nonzero(*pair) for pair in kept]))
        for (weight, _), weight_moved in zip(kept, moved):
            if weight_moved:
                raise RuntimeError(
                    f"Pruned weights of '{weight.path}' are no longer 0 although training "
                    f"kept them there: an optimizer other than the model's "
                    f"({type(self.optimizer).__name__}) or a callback wrote them. Pass "
                    f"`UpdatePruningStep(keep_weights_masked=False)` to multiply by the "
                    f"masks at every step instead.")

    @staticmethod
    def _is_due(wrapper, step):
        return wrapper.pruning_schedule.should_prune(step) or (
            step == 1 and get_granularity(wrapper.granularity).prunes_at_first_step(
                wrapper.granularity_options))

    def masker(self, granularity):
        """The mask computer of one granularity, built once per controller (channel pruning
        builds the model's channel graph there)."""
        if granularity not in self._maskers:
            self._maskers[granularity] = get_granularity(granularity).masker(self.model)
        return self._maskers[granularity]
