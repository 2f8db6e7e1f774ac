"""Pruning for a latency budget measured on this machine (LiteRT, 1 thread): latency-budgeted
channel plans against uniform and MACs-budgeted plans at the same latency.

MobileNetV2-224 (random weights), float32 and int8: the latency model is measured (wall time
printed), then plans for 1/2, 1/3 and 1/5 of the dense model's measured latency are shrunk,
converted and measured. Each plan's uniform and MACs-budgeted twins are chosen for the same
predicted latency; all are measured interleaved in one run. Without trained weights there is no
accuracy: the sensitivity table is a proxy, each group's drop growing with the square of the
fraction removed times the parameters it removes (convex, so plans spread over the groups).

Digits CNN, float32: trained, scanned (validation loss), planned to 1/2 of its latency by the
three methods, shrunk and fine-tuned alike; test accuracy over several seeds, paired.

    python benchmarks/latency_budget.py mobilenet [--precisions float32,int8] [--runs 100]
                                                  [--statistic min] [--calibration scale]
    python benchmarks/latency_budget.py digits [--seeds 5]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import edgeprune as ep  # noqa: E402
from device_bench.fileio import atomic_write  # noqa: E402
from edgeprune.choose.latency import STATISTICS  # noqa: E402
from edgeprune.choose.units import channel_terms  # noqa: E402
from edgeprune.model.cost import layer_macs  # noqa: E402
from edgeprune.sparsity.wrapper import leaf_layers  # noqa: E402
from litert_latency import interleaved_latency  # noqa: E402
from structured_digits import BATCH, accuracy, compile_model, digits_cnn  # noqa: E402
from structured_latency import SIZE, to_tflite  # noqa: E402

LEVELS = (0.2, 0.4, 0.6, 0.8, 0.9)
FRACTIONS = {"1/2": 1 / 2, "1/3": 1 / 3, "1/5": 1 / 5}


def one_thread():
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def proxy_table(model):
    """A `SensitivityTable` without data: a group's drop at sparsity s is s² times the
    parameters it removes (first order), as a fraction of the model's."""
    graph = ep.ChannelGraph(model)
    names = [group.name for group in graph.groups]
    table = ep.SensitivityTable(1.0, LEVELS, {n: [1.0] * len(LEVELS) for n in names},
                                {group.name: len(group) for group in graph.groups},
                                channel_terms(graph, names), structure="channels")
    total = model.count_params()
    table.fixed_params = total - table.remaining({}, "params")
    table.fixed_macs = macs_of(model) - table.remaining({}, "macs")
    table.metrics = {n: [1.0 - s * s * table.params[n] / total for s in LEVELS] for n in names}
    return table


def macs_of(model):
    return sum(layer_macs(layer) for layer in leaf_layers(model))


def at_latency(plan, goal_ms, latency, low=0.0, high=1.0):
    """The plan `plan(x)` (sparsities, lighter as x grows) whose predicted latency is closest
    to `goal_ms`, by bisection on x."""
    for _ in range(40):
        middle = (low + high) / 2
        if latency.predict_ms(plan(middle)) > goal_ms:
            low = middle
        else:
            high = middle
    return min(plan(low), plan(high), key=lambda s: abs(latency.predict_ms(s) - goal_ms))


def twin_plans(table, latency, allocation, cap=LEVELS[-1]):
    """Uniform and MACs-budgeted plans predicted to run as fast as `allocation`, no group
    pruned beyond `cap`."""
    goal = allocation.predicted_latency_ms
    uniform = at_latency(lambda s: latency.rounded({u: s * cap for u in table.units}),
                         goal, latency)
    dense_macs = table.remaining({}, "macs")
    floor = table.remaining({u: cap for u in table.units}, "macs") / dense_macs
    macs = at_latency(lambda x: latency.rounded(ep.allocate(
        table, dense_macs * (1 - x * (1 - floor) * 0.999), budget="macs",
        max_sparsity=cap).sparsity), goal, latency)
    return {"uniform": uniform, "MACs-budgeted": macs}


def as_allocation(sparsity, table, latency, method):
    return ep.Allocation(sparsity, dict(table.sizes), structure="channels", method=method,
                         round_to=latency.round_to,
                         predicted_latency_ms=latency.predict_ms(sparsity))


def mobilenet(precision, runs, cache_dir, statistic, calibration, python, twins_at):
    int8 = precision == "int8"
    keras.utils.set_random_seed(0)
    dense = keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3))
    dense_tflite = to_tflite(dense, int8)
    start = time.time()
    latency = ep.measure_latency_model(dense, precision=precision, num_threads=1,
                                       dense_tflite=dense_tflite, cache_dir=cache_dir,
                                       statistic=statistic, calibration=calibration,
                                       **python)
    wall = time.time() - start
    print(f"\n### MobileNetV2-{SIZE}, {precision}, 1 thread\n")
    print(f"latency model: {latency.measured_probes} probes measured, {latency.cached_probes} "
          f"from the cache, {wall:.0f} s; steps {latency.steps}; dense measured "
          f"{latency.dense_measured_ms:.2f} ms; layers alone "
          f"{sum(latency.layer_ms().values()) / latency.scale:.2f} ms ({calibration}: remainder "
          f"{latency.remainder_us / 1e3:.2f} ms, scale "
          f"{latency.scale:.2f})")
    table = proxy_table(dense)
    plans = {}
    for label, fraction in FRACTIONS.items():
        target = fraction * latency.dense_measured_ms
        try:
            allocation = ep.allocate(table, target, budget="latency", latency_model=latency)
        except ValueError as error:
            print(f"{label}: {error}")
            continue
        plans[label, "latency-budgeted"] = allocation
        if label not in twins_at:  # each MobileNetV2 conversion takes minutes on 2 shared cores
            continue
        for method, sparsity in twin_plans(table, latency, allocation).items():
            plans[label, method] = as_allocation(sparsity, table, latency, method)
    models = {("dense", ""): dense_tflite}
    stats = {("dense", ""): (dense.count_params(), macs_of(dense), latency.dense_measured_ms)}
    for key, allocation in plans.items():
        small = ep.shrink(ep.apply_channel_allocation(dense, allocation))
        models[key] = to_tflite(small, int8)
        stats[key] = (small.count_params(), macs_of(small), allocation.predicted_latency_ms)
    measured = interleaved_latency(models, runs, **python)
    key = STATISTICS[statistic]
    dense_ms = measured["dense", ""][key] / 1e3
    print(f"dense in the interleaved run: {dense_ms:.2f} ms ({statistic} of {runs} runs; median "
          f"{measured['dense', '']['p50_us'] / 1e3:.2f} ms)\n")
    print("| target | plan | target (ms) | predicted (ms) | measured (ms) | measured / dense, "
          "same run | MACs kept | params kept |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for (label, method), (params, macs, predicted) in stats.items():
        if label == "dense":
            continue
        target = FRACTIONS[label] * latency.dense_measured_ms
        ms = measured[label, method][key] / 1e3
        rows.append({"target": label, "plan": method, "target_ms": target,
                     "predicted_ms": predicted, "measured_ms": ms,
                     "median_ms": measured[label, method]["p50_us"] / 1e3,
                     "fraction_of_dense": ms / dense_ms, "params": params, "macs": macs})
        print(f"| {label} | {method} | {target:.2f} | {predicted:.2f} | {ms:.2f} | "
              f"{ms / dense_ms:.3f} (target {FRACTIONS[label]:.3f}) | "
              f"{macs / stats['dense', ''][1]:.1%} | {params / stats['dense', ''][0]:.1%} |")
    return {"precision": precision, "statistic": statistic, "calibration": calibration,
            "scale": latency.scale, "latency_model_wall_s": wall,
            "probes": latency.measured_probes, "dense_planned_ms": latency.dense_measured_ms,
            "remainder_ms": latency.remainder_us / 1e3, "dense_ms": dense_ms,
            "steps": latency.steps, "round_to": latency.round_to, "rows": rows}


def digits(seeds, epochs, tune_epochs, cache_dir, runs, statistic, calibration, python,
           max_sparsity):
    (x_all, y_all), (xt, yt) = ep.load_digits()
    x, y, xv, yv = x_all[:-300], y_all[:-300], x_all[-300:], y_all[-300:]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def val_loss(model):
        return float(loss(yv, model(xv, training=False)))

    print(f"\n### Digits CNN, float32, 1 thread: 1/2 of the dense latency, {epochs} dense epochs, "
          f"{tune_epochs} fine-tuning epochs\n")
    print("| seed | plan | predicted (ms) | measured (ms) | MACs kept | params kept | "
          "test accuracy |")
    print("|---|---|---|---|---|---|---|")
    results = []
    for seed in range(seeds):
        keras.utils.set_random_seed(seed)
        dense = compile_model(digits_cnn())
        dense.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
        dense_tflite = ep.export_tflite(dense)
        latency = ep.measure_latency_model(dense, dense_tflite=dense_tflite, cache_dir=cache_dir,
                                           statistic=statistic, calibration=calibration,
                                           progress=False, **python)
        table = ep.sensitivity_scan(dense, val_loss, higher_is_better=False, sparsities=LEVELS,
                                    structure="channels", progress=False)
        allocation = ep.allocate(table, latency.dense_measured_ms / 2, budget="latency",
                                 latency_model=latency, max_sparsity=max_sparsity)
        plans = {"latency-budgeted": allocation}
        for method, sparsity in twin_plans(table, latency, allocation, max_sparsity).items():
            plans[method] = as_allocation(sparsity, table, latency, method)
        models, row = {"dense": dense_tflite}, {}
        for method, plan in plans.items():
            keras.utils.set_random_seed(seed)
            small = compile_model(ep.shrink(ep.apply_channel_allocation(dense, plan)))
            small.fit(x, y, batch_size=BATCH, epochs=tune_epochs, verbose=0)
            models[method] = ep.export_tflite(small)
            row[method] = {"accuracy": accuracy(small, xt, yt), "params": small.count_params(),
                           "macs": macs_of(small), "predicted_ms": plan.predicted_latency_ms,
                           "kept": latency.kept_channels(plan.sparsity)}
        measured = interleaved_latency(models, runs, **python)
        for method, values in row.items():
            values["measured_ms"] = measured[method][STATISTICS[statistic]] / 1e3
            print(f"| {seed} | {method} | {values['predicted_ms']:.4f} | "
                  f"{values['measured_ms']:.4f} | {values['macs'] / macs_of(dense):.1%} | "
                  f"{values['params'] / dense.count_params():.1%} | "
                  f"{100 * values['accuracy']:.2f}% |")
        results.append(row)
    for other in ("uniform", "MACs-budgeted"):
        gains = [100 * (r["latency-budgeted"]["accuracy"] - r[other]["accuracy"]) for r in results]
        print(f"\nlatency-budgeted minus {other}: mean {np.mean(gains):+.2f} points, "
              f"{sum(g > 0 for g in gains)} of {len(gains)} seeds ahead "
              f"({', '.join(f'{g:+.2f}' for g in gains)})")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["mobilenet", "digits"])
    parser.add_argument("--precisions", default="float32,int8")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--tune-epochs", type=int, default=10)
    parser.add_argument("--cache_dir", help="latency measurements (default: ~/.cache/edgeprune)")
    parser.add_argument("--statistic", default="min", choices=sorted(STATISTICS),
                        help="of each model's timed runs (min: steadier on a loaded machine)")
    parser.add_argument("--calibration", default="scale", choices=["scale", "remainder"])
    parser.add_argument("--max_sparsity", type=float, default=LEVELS[-1],
                        help="digits: no group loses more of its channels, in any plan")
    parser.add_argument("--twins_at", default="1/3",
                        help="targets (of 1/2,1/3,1/5) whose uniform and MACs-budgeted twins "
                             "are converted and measured too")
    parser.add_argument("--python", help="the Python that times the models (device_bench's "
                                         "local target option), e.g. a `nice -n -20` wrapper")
    parser.add_argument("--output", help="also write the figures as JSON here")
    args = parser.parse_args()
    one_thread()
    start = time.time()
    python = {"python": args.python} if args.python else {}
    if args.part == "mobilenet":
        result = [mobilenet(p, args.runs, args.cache_dir, args.statistic, args.calibration,
                            python, args.twins_at.split(",")) for p in args.precisions.split(",")]
    else:
        result = digits(args.seeds, args.epochs, args.tune_epochs, args.cache_dir, args.runs,
                        args.statistic, args.calibration, python, args.max_sparsity)
    print(f"\nwall time {time.time() - start:.0f} s")
    if args.output:
        atomic_write(args.output, json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
