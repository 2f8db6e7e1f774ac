"""Pruning schedules: when to update the masks and to what sparsity.

The values match TensorFlow Model Optimization's schedules step for step (the sparsity is computed
in float32 with the same operations), so a tfmot training plan carries over unchanged. They are
computed in NumPy, the same on every Keras backend.
"""

import ctypes
import ctypes.util

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="edgeprune")
class PruningSchedule:
    """Base class: `schedule(step)` returns `(should_prune, sparsity)`.

    Subclass it and implement `__call__` and `get_config` for a custom schedule; the helpers
    `_should_prune_in_step` and the validators give the tfmot semantics for free.

    >>> class Halfway(PruningSchedule):
    ...     def __call__(self, step):
    ...         return step == 500, 0.5
    ...     def get_config(self):
    ...         return {}
    >>> Halfway()(500)
    (True, 0.5)
    """

    def __call__(self, step):
        raise NotImplementedError("A PruningSchedule subclass must implement __call__(step).")

    def decision(self, step):
        """`(should_prune, sparsity)` at `step` as a Python bool and float, whatever `__call__`
        returns: tfmot's contract allows tensors (`tf.constant(True), tf.constant(0.5)`), so a
        schedule migrated from tfmot works unchanged. Everything edgeprune reads goes through
        here."""
        should_prune, sparsity = self(step)
        return bool(np.asarray(should_prune)), float(np.asarray(sparsity))

    def should_prune(self, step):
        """Whether masks are updated at `step`; cheaper than `__call__` for the built-ins."""
        return self.decision(step)[0]

    def final_target(self):
        """`(sparsity, step)`: the sparsity this schedule ends at and the first training step
        that applies it (the first batch is step 1), or None when the schedule does not say (a
        custom schedule may override this). `strip_pruning` warns when training stopped
        earlier."""
        return None

    def get_config(self):
        raise NotImplementedError("A PruningSchedule subclass must implement get_config().")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    @staticmethod
    def _should_prune_in_step(step, begin_step, end_step, frequency):
        in_range = step >= begin_step and (end_step < 0 or step <= end_step)
        return bool(in_range and (step - begin_step) % frequency == 0)

    @staticmethod
    def _validate_steps(begin_step, end_step, frequency, allow_forever):
        for name, value in (("begin_step", begin_step), ("end_step", end_step),
                            ("frequency", frequency)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}.")
        if begin_step < 0:
            raise ValueError(f"begin_step must be >= 0, got {begin_step}.")
        if end_step == -1 and not allow_forever:
            raise ValueError("end_step cannot be -1 (prune forever) for a schedule that decays "
                             "towards a final sparsity; give the step where it should be reached.")
        if end_step != -1 and end_step < begin_step:
            raise ValueError(f"end_step ({end_step}) must be >= begin_step ({begin_step}), "
                             "or -1 to prune forever.")
        if frequency < 1:
            raise ValueError(f"frequency must be >= 1, got {frequency}.")

    @staticmethod
    def _validate_sparsity(value, name):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise ValueError(f"{name} must be a number in [0, 1), got {value!r}.")
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {value}.")


@keras.saving.register_keras_serializable(package="edgeprune")
class ConstantSparsity(PruningSchedule):
    """Prunes to `target_sparsity` every `frequency` steps from `begin_step` to `end_step`.

    `end_step=-1` keeps pruning for ever (masks are recomputed as weights change).

    >>> ConstantSparsity(0.5, begin_step=0, frequency=100)(200)
    (True, 0.5)
    """

    def __init__(self, target_sparsity, begin_step, end_step=-1, frequency=100):
        self._validate_steps(begin_step, end_step, frequency, allow_forever=True)
        self._validate_sparsity(target_sparsity, "target_sparsity")
        self.target_sparsity = float(target_sparsity)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.frequency = int(frequency)

    def should_prune(self, step):
        return self._should_prune_in_step(step, self.begin_step, self.end_step, self.frequency)

    def __call__(self, step):
        return self.should_prune(step), float(np.float32(self.target_sparsity))

    def final_target(self):
        # Step 0 never runs: with begin_step=0 the first pruning step is `frequency`.
        return self.target_sparsity, self.begin_step or self.frequency

    def get_config(self):
        return {"target_sparsity": self.target_sparsity, "begin_step": self.begin_step,
                "end_step": self.end_step, "frequency": self.frequency}


@keras.saving.register_keras_serializable(package="edgeprune")
class PolynomialDecay(PruningSchedule):
    """Sparsity rises from `initial_sparsity` to `final_sparsity` along a polynomial.

    sparsity(step) = final + (initial - final) * (1 - p) ** power, with
    p = clip((step - begin_step) / (end_step - begin_step), 0, 1) (Zhu & Gupta, 2017).

    >>> sched = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000, power=3, frequency=100)
    >>> sched(1000)
    (True, 0.800000011920929)
    """

    def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step, power=3,
                 frequency=100):
        self._validate_steps(begin_step, end_step, frequency, allow_forever=False)
        if end_step == begin_step:
            raise ValueError(f"end_step ({end_step}) must be greater than begin_step "
                             f"({begin_step}) for PolynomialDecay; use ConstantSparsity for a "
                             "one-shot target.")
        self._validate_sparsity(initial_sparsity, "initial_sparsity")
        self._validate_sparsity(final_sparsity, "final_sparsity")
        self.initial_sparsity = float(initial_sparsity)
        self.final_sparsity = float(final_sparsity)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.power = power
        self.frequency = int(frequency)

    def should_prune(self, step):
        return self._should_prune_in_step(step, self.begin_step, self.end_step, self.frequency)

    def __call__(self, step):
        # tfmot's TensorFlow float32 operations, in its order.
        progress = np.float32(np.asarray(step) - self.begin_step) / np.float32(
            self.end_step - self.begin_step)
        progress = np.minimum(np.float32(1.0), np.maximum(np.float32(0.0), progress))
        sparsity = np.float32(self.initial_sparsity - self.final_sparsity) * _powf(
            np.float32(1.0) - progress, np.float32(self.power)) + np.float32(self.final_sparsity)
        return self.should_prune(step), float(sparsity)

    def final_target(self):
        return self.final_sparsity, self.end_step

    def get_config(self):
        return {"initial_sparsity": self.initial_sparsity, "final_sparsity": self.final_sparsity,
                "begin_step": self.begin_step, "end_step": self.end_step, "power": self.power,
                "frequency": self.frequency}


def _c_powf():
    """The C library's `powf`, which TensorFlow's float32 `Pow` of a scalar calls: NumPy's float32
    power (vectorized) and a float64 `pow` rounded to float32 each differ from it in the last bit
    for some inputs. Without one (no C math library found) the float64 `pow` stands in."""
    library = ctypes.util.find_library("m") or ctypes.util.find_library("c")
    powf = getattr(ctypes.CDLL(library), "powf", None) if library else None
    if powf is None:
        return lambda base, exponent: np.float32(float(base) ** float(exponent))
    powf.restype, powf.argtypes = ctypes.c_float, (ctypes.c_float, ctypes.c_float)
    return lambda base, exponent: np.float32(powf(base, exponent))


_powf = _c_powf()


def deserialize_schedule(config):
    """Turns a schedule, a Keras-serialized schedule or None into a schedule object."""
    if config is None or isinstance(config, PruningSchedule):
        return config
    return keras.saving.deserialize_keras_object(config)
