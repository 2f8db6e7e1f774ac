"""A latency plan checked on the device: plan, measure the shrunk model, correct, plan again;
and timing whole `.tflite` models on a target (`measure_tflite_ms`, `ratio_to_first`).

A latency model adds up layers timed alone, so its prediction for a whole shrunk network is off
by what the layers do together (measured here on MobileNetV2: int8 plans for 1/3 and 1/5 of the
dense latency ran 14% and 17% slower than predicted, float32 ones within ±7%). NetAdapt's answer
is to measure each proposal; this one measures the plans only. Each round converts the plan's
shrunk model and times it on the device; a plan that misses the target by more than
`tolerance` is planned again for the target divided by the measured/predicted ratio, which is
what the model got wrong near there. A few rounds at a conversion each.

>>> plan = ep.plan_for_latency(table, 0.5 * latency.dense_measured_ms, latency,
...                            ep.shrunk_latency(model, ep.export_tflite))  # doctest: +SKIP
>>> plan.predicted_latency_ms, plan.measured_latency_ms, len(plan.latency_rounds)  # doctest: +SKIP
"""

import tempfile
import warnings

from edgeprune.choose.allocation import allocate, apply_channel_allocation
from edgeprune.choose.latency_probes import STATISTICS, as_path


def plan_for_latency(table, target_ms, latency_model, measure, tolerance=0.05, max_rounds=4,
                     **allocate_options):
    """`allocate(table, target_ms, budget="latency", latency_model=latency_model)`, measured and
    corrected until within `tolerance` of `target_ms` or after `max_rounds` plans.

    Args:
        table, target_ms, latency_model: as for `allocate` with budget "latency".
        measure: `measure(allocation) -> ms` on the device, e.g. `shrunk_latency(model, ...)`,
            with the latency model's statistic.
        tolerance: how far from `target_ms` a measured plan may land, as a fraction.
        max_rounds: plans measured at most.
        allocate_options: `skip`, `max_sparsity`.

    Returns the `Allocation` measured closest to `target_ms`, with `measured_latency_ms` and
    `latency_rounds` (`{"goal_ms", "predicted_ms", "measured_ms"}` per plan) filled in. A
    correction the latency model cannot plan (it needs more than every group at
    `max_sparsity`) ends the search there; a result still outside `tolerance` warns why.
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must lie in (0, 1), got {tolerance}.")
    if int(max_rounds) < 1:
        raise ValueError(f"max_rounds must be at least 1, got {max_rounds}.")
    rounds, plans, goal, stopped = [], [], target_ms, f"after {int(max_rounds)} plans"
    for _ in range(int(max_rounds)):
        try:
            plan = allocate(table, goal, budget="latency", latency_model=latency_model,
                            **allocate_options)
        except ValueError as error:
            if not plans:
                raise
            stopped = f"the correction to {goal:.4g} ms cannot be planned ({error})"
            break
        kept = latency_model.kept_channels(plan.sparsity)
        if any(latency_model.kept_channels(p.sparsity) == kept for p in plans):
            stopped = "the correction lands on a plan already measured"
            break
        measured = float(measure(plan))
        rounds.append({"goal_ms": goal, "predicted_ms": plan.predicted_latency_ms,
                       "measured_ms": measured})
        plans.append(plan)
        if abs(measured / target_ms - 1) <= tolerance:
            break
        goal = target_ms * plan.predicted_latency_ms / measured
    best = min(range(len(plans)), key=lambda i: abs(rounds[i]["measured_ms"] / target_ms - 1))
    chosen, measured = plans[best], rounds[best]["measured_ms"]
    if abs(measured / target_ms - 1) > tolerance:
        warnings.warn(f"plan_for_latency: the closest plan measured {measured:.4g} ms, "
                      f"{measured / target_ms - 1:+.0%} off the {target_ms:.4g} ms target; "
                      f"stopped because {stopped}.", stacklevel=2)
    chosen.target = float(target_ms)
    chosen.measured_latency_ms = measured
    chosen.latency_rounds = rounds
    return chosen


def shrunk_latency(model, convert, target="local", num_threads=1, num_runs=50,
                   statistic="median", criterion="l1", dense_ms=None, **target_options):
    """A `measure` for `plan_for_latency`: `model` with a channel allocation applied, shrunk,
    converted by `convert(keras_model) -> .tflite bytes` (the deployment's conversion, e.g.
    `lambda m: ep.export_tflite(m, quantize="int8", representative_data=x, int8_io=True)`) and
    timed on `target` (`measure_tflite_ms`: its options as keyword arguments).

    `dense_ms`: for a target that is a fraction of the dense model's latency, the dense
    latency it was computed from (`latency_model.dense_measured_ms`). Each plan is then timed
    interleaved with `model` itself, and measures as its median ratio to it times `dense_ms`,
    so a device that runs faster or slower than when the dense model was timed does not move
    the plan (here the same MobileNetV2 measured 8.16 ms and 7.47 ms ten minutes apart)."""
    from edgeprune.structured.shrink import shrink

    dense_tflite = []  # converted at the first plan

    def measure(allocation):
        small = convert(shrink(apply_channel_allocation(model, allocation, criterion=criterion)))
        if dense_ms is None:
            return measure_tflite_ms(small, target=target, num_threads=num_threads,
                                     num_runs=num_runs, statistic=statistic, **target_options)
        if not dense_tflite:
            dense_tflite.append(convert(model))
        return dense_ms * ratio_to_first([dense_tflite[0], small], target, num_threads,
                                         num_runs, **target_options)

    return measure


def measure_tflite_ms(tflite, target="local", num_threads=1, num_runs=50, statistic="median",
                      **target_options):
    """Latency (ms, median or min of `num_runs`) of one `.tflite` (bytes or a path) on `target`:
    what a latency model's prediction is checked against.

    >>> ep.measure_tflite_ms(ep.export_tflite(small), num_threads=1)   # doctest: +SKIP
    """
    result = _benchmark([tflite], target, num_threads, num_runs, target_options)
    return getattr(result.models[0].latency, STATISTICS[statistic]) / 1e3


def ratio_to_first(tflites, target="local", num_threads=1, num_runs=50, **target_options):
    """The last of `tflites` (bytes or paths) over the first: the median ratio of their runs,
    timed interleaved on `target`, so the device's drift cancels."""
    return _benchmark(tflites, target, num_threads, num_runs, target_options).comparisons[-1] \
        .ratio.median


def _benchmark(tflites, target, num_threads, num_runs, target_options):
    import device_bench

    with tempfile.TemporaryDirectory(prefix="edgeprune-latency-") as folder:
        paths = [as_path(tflite, folder, f"model_{i}.tflite") for i, tflite in enumerate(tflites)]
        return device_bench.benchmark(paths, target=target, num_threads=num_threads,
                                      num_runs=num_runs, min_secs=0, **target_options)
