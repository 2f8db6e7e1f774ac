"""Training a pruned model on several processes or hosts.

Masks need no communication: every process computes them on the host from its own copy of the
weights, which data parallelism keeps identical on every replica (JAX's
`keras.distribution.DataParallel`, TensorFlow's `MultiWorkerMirroredStrategy`), with the same
deterministic NumPy code, so every replica holds the same masks at every step.

What this module adds:

- `process_index()`, `process_count()`, `is_first_process()`: which process this is, on every
  backend (JAX: `jax.distributed`; TensorFlow: `TF_CONFIG`; PyTorch: `torch.distributed`).
- `BackupAndRestore`: Keras's callback of that name, written by the first process only, that
  also resumes the pruning step, on any number of processes.
- `multi_worker_strategy()`: TensorFlow's `MultiWorkerMirroredStrategy` in a form that Keras
  3.15's `fit` can train under.
- `start_data_parallel(...)`, `process_share(array, global_batch)`, `barrier(name)`: JAX's
  processes joined, `DataParallel` set, each process's share of the data, a meeting point.

>>> import edgeprune as ep
>>> ep.process_index(), ep.process_count(), ep.is_first_process()
(0, 1, True)
"""

import functools
import json
import os
import tempfile

import keras

from edgeprune.tf_logs import quiet
from edgeprune.sparsity.wrapper import pruning_wrappers


def _jax_processes():
    import jax

    return jax.process_index(), jax.process_count()


def _tensorflow_processes():
    """From `TF_CONFIG`, as `MultiWorkerMirroredStrategy` reads it: the "chief" task is the first
    process when there is one, else worker 0."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    order = [("chief", i) for i in range(len(cluster.get("chief", [])))] + [
        ("worker", i) for i in range(len(cluster.get("worker", [])))]
    this = (task.get("type"), int(task.get("index", 0)))
    if this not in order:
        return 0, 1
    return order.index(this), len(order)


def _torch_processes():
    import torch.distributed as torch_distributed

    if not torch_distributed.is_available() or not torch_distributed.is_initialized():
        return 0, 1
    return torch_distributed.get_rank(), torch_distributed.get_world_size()


_PROCESSES = {"jax": _jax_processes, "tensorflow": _tensorflow_processes,
              "torch": _torch_processes}


def process_index():
    """This process's index among the processes training together (0 when training alone)."""
    return _PROCESSES[keras.backend.backend()]()[0]


def process_count():
    """How many processes train together (1 when training alone)."""
    return _PROCESSES[keras.backend.backend()]()[1]


def is_first_process():
    """True in the process that writes files (checkpoints, logs, run folders) for all of them."""
    return process_index() == 0


def start_data_parallel(coordinator=None, num_processes=1, process_id=0):
    """Joins the JAX processes training together and sets `keras.distribution.DataParallel`
    over every device of every process, each process feeding its own share of every batch
    (`auto_shard_dataset=False`). With one process it only sets the distribution.

    Call it first thing, before any JAX computation. CPUs exchange gradients over TCP (gloo).

    >>> ep.start_data_parallel("host1:12345", num_processes=2, process_id=0)  # doctest: +SKIP
    """
    if keras.backend.backend() != "jax":
        raise ValueError(f"Data parallel training over processes runs on Keras's JAX backend "
                         f"(keras.distribution); this process runs {keras.backend.backend()!r}: "
                         "set KERAS_BACKEND=jax, or use ep.multi_worker_strategy() on "
                         "TensorFlow.")
    import jax

    if num_processes > 1 and not jax.distributed.is_initialized():
        if not 0 <= process_id < num_processes:
            raise ValueError(f"process_id must be in 0..{num_processes - 1}, got {process_id}.")
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator, num_processes=num_processes,
                                   process_id=process_id)
    keras.distribution.set_distribution(keras.distribution.DataParallel(
        auto_shard_dataset=False))


def barrier(name):
    """Waits until every process training together reaches `barrier(name)` (JAX; a no-op for
    one process)."""
    if process_count() > 1 and keras.backend.backend() == "jax":
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def process_share(array, global_batch):
    """This process's share of every global batch of `array` (along its first axis), for `fit`
    with `batch_size=global_batch // process_count()`; a last, partial global batch is dropped,
    so every process runs the same number of steps."""
    count, index = process_count(), process_index()
    if global_batch % count:
        raise ValueError(f"The batch size ({global_batch}) must be divisible by the number of "
                         f"processes ({count}): each gives an equal share of every batch.")
    steps, share = len(array) // global_batch, global_batch // count
    batches = array[:steps * global_batch].reshape(steps, global_batch, *array.shape[1:])
    return batches[:, index * share:(index + 1) * share].reshape(-1, *array.shape[1:])


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` for pruned models and several processes.

    The training state (weights, masks, pruning step, optimizer, epoch) is backed up at each
    epoch end into `backup_dir` by the first process only (Keras's callback writes from every
    process, into the same files). When `fit` starts again, every process restores it, whatever the number of processes
    now, and the pruning step carries on from the saved one, whatever the order of the callbacks.
    `backup_dir` must be a folder every process can read (one host, or a shared file system).
    Keep the global batch size: the schedule counts steps.

    >>> model.fit(x, y, epochs=10, callbacks=[
    ...     ep.UpdatePruningStep(), ep.BackupAndRestore("backup")])  # doctest: +SKIP
    """

    def __init__(self, backup_dir, double_checkpoint=False, delete_checkpoint=True):
        super().__init__(backup_dir, save_freq="epoch", double_checkpoint=double_checkpoint,
                         delete_checkpoint=delete_checkpoint)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        # UpdatePruningStep may have begun before the restore: start its count again from the
        # restored `pruning_step`.
        controllers = {id(c): c for c in (w.controller() for w in pruning_wrappers(self.model))
                       if c is not None}
        for controller in controllers.values():
            controller.begin()

    def on_epoch_end(self, epoch, logs=None):
        if is_first_process():
            super().on_epoch_end(epoch, logs)
        else:
            # Saving runs collectives under JAX's multi-process distribution (an assign, or
            # Keras's saving creating a variable, is one): every process saves, the others
            # into a file thrown away.
            with tempfile.TemporaryDirectory() as folder:
                self.model.save_weights(os.path.join(folder, "unused.weights.h5"))

    def on_train_end(self, logs=None):
        if is_first_process():
            super().on_train_end(logs)


def multi_worker_strategy(**kwargs):
    """`tf.distribute.MultiWorkerMirroredStrategy(**kwargs)` under which Keras 3.15's `fit` runs.

    Keras 3.15's `fit` under TensorFlow's strategy fails before the first step ("unsupported
    type PerReplica to a Tensor"): it hands `strategy.reduce` the whole `(x, y)` batch, a nested
    structure that TensorFlow's `reduce` does not take, and then scalar metrics with `axis=0`.
    This strategy's `reduce` takes both (each tensor of a structure reduced alone; a scalar
    reduced across replicas only); everything else is TensorFlow's. Create it first thing, as
    TensorFlow's: it reads `TF_CONFIG` and starts the collective runtime.

    >>> strategy = ep.multi_worker_strategy()  # doctest: +SKIP
    >>> with strategy.scope():  # doctest: +SKIP
    ...     model = ep.prune_low_magnitude(build_model(), pruning_schedule=schedule)
    ...     model.compile(...)
    >>> model.fit(dataset, callbacks=[ep.UpdatePruningStep()])  # doctest: +SKIP
    """
    # Its C++ runtime logs a dozen lines while the workers connect (kept off the terminal).
    with quiet():
        return _fit_ready_strategy_class()(**kwargs)


@functools.cache
def _fit_ready_strategy_class():
    import tensorflow as tf

    class FitReadyMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis=None):
            def reduce_one(tensor):
                scalar = self.experimental_local_results(tensor)[0].shape.rank == 0
                return super(FitReadyMultiWorkerMirroredStrategy, self).reduce(
                    reduce_op, tensor, None if scalar else axis)

            return tf.nest.map_structure(reduce_one, value)

    return FitReadyMultiWorkerMirroredStrategy
