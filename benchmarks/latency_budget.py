"""Pruning for a latency budget measured on this machine (LiteRT, 1 thread): latency-budgeted
channel plans against uniform and MACs-budgeted plans at the same MEASURED latency.

MobileNetV2-224 (random weights), float32 and int8: the latency model is measured (wall time
printed), then plans for 1/2, 1/3 and 1/5 of the dense model's measured latency are made with
`ep.plan_for_latency` (each plan shrunk, converted and timed interleaved with the dense model, as
`shrunk_latency(..., dense_ms=...)` does; one that misses its fraction of dense by more than
`--plan_tolerance` is planned again, corrected by the measured ratio), and measured again in the
final interleaved run. Without trained weights there is no accuracy: the sensitivity table is
a proxy, each group's drop growing with the square of the fraction removed times the parameters
it removes (convex, so plans spread over the groups).

Digits CNN, float32: trained, scanned (validation loss), planned to 1/2 of its latency (or
`--digits_target`) by the three methods, shrunk and fine-tuned alike; test accuracy over several
seeds, paired.

Twins: the uniform plan (one sparsity everywhere) and the MACs-budgeted plan (least drop for a
MACs budget), each with one parameter, start where the latency model predicts them as fast as
the latency plan; then each is converted and timed interleaved with the latency plan, its goal
corrected by the measured ratio, then by secant between the closest slower and faster
candidates (`--rounds`), until within `--tolerance` (2%) of the latency plan's measured latency.
Kept counts are on the SIMD steps, so a twin may have no plan that close: the table then shows
the closest candidate and the one on the other side, and interpolates what the twin keeps (and,
for digits, its accuracy) at the latency plan's latency. A final interleaved run times them all.

    python benchmarks/latency_budget.py mobilenet [--precisions float32,int8] [--runs 100]
                                                  [--statistic min] [--calibration scale]
                                                  [--twins_at 1/2,1/3,1/5]
    python benchmarks/latency_budget.py digits [--seeds 5] [--digits_target 1/2]
    python benchmarks/latency_budget.py plans [--seeds 2]   # digits: every plan near it, tuned
    python benchmarks/latency_budget.py steps    # one layer at many widths: the SIMD tiles
"""

import argparse
import dataclasses
import fractions
import itertools
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
from edgeprune.choose.latency_plan import STATISTICS, ratio_to_first  # noqa: E402
from edgeprune.choose.latency_probes import Probe  # noqa: E402
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


def twin_families(table, latency, cap=LEVELS[-1]):
    """The uniform and MACs-budgeted plans, each as `x -> sparsity` for x in [0, 1] (lighter as x
    grows), no group pruned beyond `cap`, kept counts rounded to the latency model's steps as
    the latency plan's are (a twin never pays for a half-used tile either)."""
    dense_macs = table.remaining({}, "macs")
    floor = table.remaining({u: cap for u in table.units}, "macs") / dense_macs

    def macs_budgeted(x):
        return latency.rounded(ep.allocate(table, dense_macs * (1 - x * (1 - floor) * 0.999),
                                           budget="macs", max_sparsity=cap).sparsity)

    return {"uniform": lambda x: latency.rounded({u: x * cap for u in table.units}),
            "MACs-budgeted": macs_budgeted}


def x_at_predicted(family, goal_ms, latency):
    """The x whose plan `family(x)` the latency model predicts closest to `goal_ms` (bisection)."""
    low, high = 0.0, 1.0
    for _ in range(40):
        middle = (low + high) / 2
        if latency.predict_ms(family(middle)) > goal_ms:
            low = middle
        else:
            high = middle
    return min(low, high, key=lambda x: abs(latency.predict_ms(family(x)) - goal_ms))


@dataclasses.dataclass
class Candidate:
    """A twin plan tried: `ratio` is its measured latency over the latency plan's, both timed
    in the same interleaved run."""

    x: float
    sparsity: dict
    ratio: float


class Builder:
    """`.tflite` of a channel plan of `dense` (shrunk, converted), one per distinct kept count."""

    def __init__(self, dense, latency, convert):
        self.dense, self.latency, self.convert = dense, latency, convert
        self.models, self.shrunk = {}, {}

    def key(self, sparsity):
        return tuple(sorted(self.latency.kept_channels(sparsity).items()))

    def new_small(self, sparsity):
        """A new shrunk model (to fine-tune)."""
        plan = ep.Allocation(sparsity, dict(self.latency.sizes), structure="channels",
                             round_to=self.latency.round_to)
        return ep.shrink(ep.apply_channel_allocation(self.dense, plan))

    def small(self, sparsity):
        key = self.key(sparsity)
        if key not in self.shrunk:
            self.shrunk[key] = self.new_small(sparsity)
        return self.shrunk[key]

    def __call__(self, sparsity):
        key = self.key(sparsity)
        if key not in self.models:
            self.models[key] = self.convert(self.small(sparsity))
        return self.models[key]


def match_measured(plan, families, latency, build, runs, python, rounds, tolerance):
    """`{method: [Candidate]}`: for each twin family, the plans tried in search of one that
    MEASURES as fast as `plan` (within `tolerance`).

    Round 1 takes the plan predicted as fast; round 2 corrects that goal by the measured ratio;
    later rounds interpolate x between the closest slower and faster candidates (secant), or
    extrapolate from the last two. Every round times `plan` and the families' new candidates
    interleaved. A family stops once within tolerance, or when no untried plan lies between its
    closest candidates."""
    tried = {method: [] for method in families}
    proposed = {method: x_at_predicted(family, plan.predicted_latency_ms, latency)
                for method, family in families.items()}
    for index in range(rounds):
        proposed = {m: x for m, x in proposed.items() if x is not None}
        if not proposed:
            break
        candidates = {m: families[m](x) for m, x in proposed.items()}
        measured = interleaved_latency({"plan": build(plan.sparsity),
                                        **{m: build(s) for m, s in candidates.items()}},
                                       runs, **python)
        for method, x in proposed.items():
            tried[method].append(Candidate(x, candidates[method], 1 / measured[method]["speedup"]))
        print(f"  round {index + 1}: measured / latency plan "
              + ", ".join(f"{m} {tried[m][-1].ratio:.3f}" for m in proposed))
        proposed = {m: next_x(families[m], tried[m], latency, build, tolerance)
                    for m in proposed}
    return tried


def closest_and_partner(tried):
    """The candidate measured closest to the latency plan, and the closest one on the other
    side of it (None if every candidate lies on the same side)."""
    best = min(tried, key=lambda c: abs(c.ratio - 1))
    other = [c for c in tried if (c.ratio - 1) * (best.ratio - 1) < 0]
    return best, min(other, key=lambda c: abs(c.ratio - 1), default=None)


def next_x(family, tried, latency, build, tolerance):
    """The x to try next (see `match_measured`), or None."""
    best, partner = closest_and_partner(tried)
    if abs(best.ratio - 1) <= tolerance:
        return None
    if len(tried) == 1:
        x = x_at_predicted(family, latency.predict_ms(best.sparsity) / best.ratio, latency)
    else:
        a, b = (best, partner) if partner else tried[-2:]
        x = (a.x + b.x) / 2 if a.ratio == b.ratio else \
            a.x + (1 - a.ratio) * (b.x - a.x) / (b.ratio - a.ratio)
    seen = {build.key(c.sparsity) for c in tried}
    if build.key(family(min(max(x, 0.0), 1.0))) not in seen:
        return min(max(x, 0.0), 1.0)
    # Plans are discrete (kept counts on SIMD steps): the next distinct plan from the closest
    # candidate towards the latency plan, short of the partner.
    direction = 1 if best.ratio > 1 else -1
    limit = partner.x if partner else (1.0 if direction > 0 else 0.0)
    for x in np.arange(best.x, limit + direction * 1e-9, direction * 0.005):
        if build.key(family(x)) not in seen:
            return float(x)
    return None


def interpolated(best, partner, value):
    """`value(candidate)` interpolated linearly in measured ratio at ratio 1 (the latency plan's
    latency), between two candidates on either side of it."""
    weight = (1 - partner.ratio) / (best.ratio - partner.ratio)
    mixed = weight * np.asarray(value(best)) + (1 - weight) * np.asarray(value(partner))
    return tuple(mixed.tolist()) if mixed.ndim else float(mixed)


def final_twins(tried, tolerance):
    """`{method: (closest, partner or None)}`: the partner only where the closest misses."""
    chosen = {}
    for method, candidates in tried.items():
        best, partner = closest_and_partner(candidates)
        chosen[method] = (best, partner if abs(best.ratio - 1) > tolerance else None)
    return chosen


def final_models(prefix, plan, chosen, build):
    """`{name: .tflite}` for the final interleaved run: the latency plan, each twin's closest
    candidate and, where it misses, its partner on the other side."""
    models = {prefix + "latency-budgeted": build(plan.sparsity)}
    for method, (best, partner) in chosen.items():
        models[prefix + method] = build(best.sparsity)
        if partner:
            models[prefix + method + " (other side)"] = build(partner.sparsity)
    return models


def remeasured(prefix, chosen, measured):
    """`chosen` with each candidate's ratio to the latency plan from the final run (both
    against the dense model there: medians of interleaved pairs)."""
    plan = measured[prefix + "latency-budgeted"]["speedup"]

    def again(name, candidate):
        return candidate and dataclasses.replace(
            candidate, ratio=plan / measured[prefix + name]["speedup"])

    return {method: (again(method, best), again(method + " (other side)", partner))
            for method, (best, partner) in chosen.items()}


def at_plan_latency(best, partner, tolerance, value):
    """`value` of the twin at the latency plan's measured latency: the closest candidate's if
    within tolerance, else interpolated between it and its partner if they still straddle the
    plan in the final run, else None."""
    if abs(best.ratio - 1) <= tolerance:
        return value(best)
    if partner is None or (best.ratio - 1) * (partner.ratio - 1) >= 0:
        return None
    return interpolated(best, partner, value)


def percent(value):
    return "—" if value is None else f"{value:.1%}"


def mobilenet(precision, runs, cache_dir, statistic, calibration, python, twins_at, rounds,
              tolerance, plan_rounds, plan_tolerance, final_repeats):
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
    build = Builder(dense, latency, lambda small: to_tflite(small, int8))
    families = twin_families(table, latency)

    def measure(plan):  # the target is a fraction of dense: timed beside it, as in the table
        return latency.dense_measured_ms * ratio_to_first(
            [dense_tflite, build(plan.sparsity)], "local", 1, 3 * runs, **python)

    plans, twins, matching = {}, {}, {}
    for label, fraction in FRACTIONS.items():
        goal = fraction * latency.dense_measured_ms
        try:
            plans[label] = ep.plan_for_latency(table, goal, latency, measure,
                                               tolerance=plan_tolerance, max_rounds=plan_rounds)
        except ValueError as error:
            print(f"{label}: {error}")
            continue
        print(f"{label}: planned in {len(plans[label].latency_rounds)} round(s): " + ", ".join(
            f"goal {r['goal_ms']:.2f} ms, predicted {r['predicted_ms']:.2f}, measured "
            f"{r['measured_ms']:.2f} ({r['measured_ms'] / goal - 1:+.0%} of the target)"
            for r in plans[label].latency_rounds))
        if label in twins_at:  # each MobileNetV2 conversion takes ~10 s on a quiet machine
            print(f"{label}: twins matched on measured latency (±{tolerance:.0%})")
            matching[label] = match_measured(plans[label], families, latency, build, runs,
                                             python, rounds, tolerance)
            twins[label] = final_twins(matching[label], tolerance)
    models = {"dense": dense_tflite}
    for label, plan in plans.items():
        models.update(final_models(f"{label} ", plan, twins.get(label, {}), build))
    # A ratio of two 1-4 ms models moves by up to ±10% between runs of 100 here: several runs.
    repeats = [interleaved_latency(models, runs, **python) for _ in range(final_repeats)]
    measured, key = repeats[0], STATISTICS[statistic]
    of_dense = {name: [r[name][key] / r["dense"][key] for r in repeats] for name in models}
    dense_ms = float(np.median([r["dense"][key] for r in repeats])) / 1e3
    print(f"\ndense in the final interleaved runs: {dense_ms:.2f} ms ({statistic} of {runs} runs, "
          f"median of {final_repeats} runs)\n")
    print("| target | plan | predicted (ms) | measured (ms) | measured / dense | "
          "measured / latency plan | MACs kept | params kept | at the latency plan's "
          "latency: MACs, params |")
    print("|---|---|---|---|---|---|---|---|---|")
    dense_macs, dense_params = macs_of(dense), dense.count_params()

    def kept(sparsity):
        small = build.small(sparsity)
        return macs_of(small) / dense_macs, small.count_params() / dense_params

    rows = []

    def row(label, name, sparsity, ratio=None, equal=None):
        fractions = of_dense[f"{label} {name}"]
        ms = float(np.median(fractions)) * dense_ms
        macs, params = kept(sparsity)
        planning = plans[label].latency_rounds if name == "latency-budgeted" else None
        rows.append({"target": label, "plan": name, "planning_rounds": planning, "target_ms":
                     FRACTIONS[label] * latency.dense_measured_ms,
                     "predicted_ms": latency.predict_ms(sparsity), "measured_ms": ms,
                     "median_ms": measured[f"{label} {name}"]["p50_us"] / 1e3,
                     "fraction_of_dense": ms / dense_ms, "fraction_of_dense_runs": fractions,
                     "ratio_to_latency_plan": ratio,
                     "macs_kept": macs, "params_kept": params,
                     "at_plan_latency": equal})
        shown = f"{ms / dense_ms:.3f}"
        if len(fractions) > 1:
            shown += f" [{min(fractions):.3f}–{max(fractions):.3f}]"
        if name == "latency-budgeted":
            shown += f" (target {FRACTIONS[label]:.3f})"
        at = "" if ratio is None or "other side" in name else \
            ("—" if equal is None else f"{equal[0]:.1%}, {equal[1]:.1%}")
        print(f"| {label} | {name} | {latency.predict_ms(sparsity):.2f} | {ms:.2f} | "
              f"{shown} | {'' if ratio is None else f'{ratio:.3f}'} | {macs:.1%} | "
              f"{params:.1%} | {at} |")

    for label, plan in plans.items():
        row(label, "latency-budgeted", plan.sparsity)
        for method, (best, partner) in remeasured(f"{label} ", twins.get(label, {}),
                                                  measured).items():
            equal = at_plan_latency(best, partner, tolerance, lambda c: kept(c.sparsity))
            row(label, method, best.sparsity, best.ratio, equal)
            if partner:
                row(label, method + " (other side)", partner.sparsity, partner.ratio)
    return {"precision": precision, "statistic": statistic, "calibration": calibration,
            "scale": latency.scale, "latency_model_wall_s": wall,
            "probes": latency.measured_probes, "dense_planned_ms": latency.dense_measured_ms,
            "remainder_ms": latency.remainder_us / 1e3, "dense_ms": dense_ms,
            "steps": latency.steps, "round_to": latency.round_to, "tolerance": tolerance,
            "rows": rows, "matching": {label: {m: [{"x": c.x, "ratio": c.ratio,
                                                    "macs_params_kept": kept(c.sparsity)}
                                                   for c in tried]
                                               for m, tried in by_method.items()}
                                       for label, by_method in matching.items()}}


def digits(args, python):
    (x_all, y_all), test = ep.load_digits()
    train = x_all[:-300], y_all[:-300]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def val_loss(model):
        return float(loss(y_all[-300:], model(x_all[-300:], training=False)))

    print(f"\n### Digits CNN, float32, 1 thread: {args.digits_target} of the dense latency, "
          f"{args.epochs} dense "
          f"epochs, {args.tune_epochs} fine-tuning epochs, twins matched on measured latency "
          f"(±{args.tolerance:.0%})\n")
    results = [digits_seed(seed, args, python, train, test, val_loss)
               for seed in range(args.seeds)]
    summarize(results, args.tolerance)
    return results


def digits_seed(seed, args, python, train, test, val_loss):
    """One seed: train, scan, plan, match the twins, fine-tune every plan alike, measure."""
    keras.utils.set_random_seed(seed)
    dense = compile_model(digits_cnn())
    dense.fit(*train, batch_size=BATCH, epochs=args.epochs, verbose=0)
    dense_tflite = ep.export_tflite(dense)
    latency = ep.measure_latency_model(dense, dense_tflite=dense_tflite,
                                       cache_dir=args.cache_dir, statistic=args.statistic,
                                       calibration=args.calibration, progress=False, **python)
    table = ep.sensitivity_scan(dense, val_loss, higher_is_better=False, sparsities=LEVELS,
                                structure="channels", progress=False)
    plan = ep.allocate(table, latency.dense_measured_ms * float(args.digits_target),
                       budget="latency",
                       latency_model=latency, max_sparsity=args.max_sparsity)
    build = Builder(dense, latency, ep.export_tflite)
    print(f"seed {seed}: steps {latency.steps}, round_to {latency.round_to}")
    chosen = final_twins(match_measured(plan, twin_families(table, latency, args.max_sparsity),
                                        latency, build, args.runs, python, args.rounds,
                                        args.tolerance), args.tolerance)
    plans = {"latency-budgeted": plan.sparsity}
    for method, (best, partner) in chosen.items():
        plans[method] = best.sparsity
        if partner:
            plans[method + " (other side)"] = partner.sparsity
    tuned, outcome = {}, {}
    for name, sparsity in plans.items():
        keras.utils.set_random_seed(seed)  # every plan fine-tuned alike
        small = compile_model(build.new_small(sparsity))
        small.fit(*train, batch_size=BATCH, epochs=args.tune_epochs, verbose=0)
        tuned[name] = ep.export_tflite(small)
        outcome[name] = {"accuracy": accuracy(small, *test),
                         "kept": latency.kept_channels(sparsity),
                         "macs": macs_of(small) / macs_of(dense),
                         "params": small.count_params() / dense.count_params(),
                         "predicted_ms": latency.predict_ms(sparsity)}
    measured = interleaved_latency({"dense": dense_tflite, **tuned}, args.runs, **python)
    for name, values in outcome.items():
        values["measured_ms"] = measured[name][STATISTICS[args.statistic]] / 1e3
        values["ratio"] = measured["latency-budgeted"]["speedup"] / measured[name]["speedup"]
    for method, (best, partner) in remeasured("", chosen, measured).items():
        names = {id(best): method, id(partner): method + " (other side)"}
        outcome[method]["at_plan_latency"] = at_plan_latency(
            best, partner, args.tolerance, lambda c, names=names: outcome[names[id(c)]]["accuracy"])
    print("\n| seed | plan | kept channels | predicted (µs) | measured (µs) | measured / "
          "latency plan | MACs kept | params kept | test accuracy | accuracy at the latency "
          "plan's latency |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, v in outcome.items():
        equal = percent(v["at_plan_latency"]) if "at_plan_latency" in v else ""
        print(f"| {seed} | {name} | {'/'.join(map(str, v['kept'].values()))} | "
              f"{1e3 * v['predicted_ms']:.1f} | {1e3 * v['measured_ms']:.1f} | "
              f"{v['ratio']:.3f} | {v['macs']:.1%} | {v['params']:.1%} | "
              f"{v['accuracy']:.2%} | {equal} |")
    print()
    return outcome


def all_plans(args, python):
    """Digits: every plan on the SIMD steps predicted within 15% above the target (a fraction of
    the dense latency), fine-tuned alike: how much the choice of plan matters after fine-tuning."""
    (x_all, y_all), test = ep.load_digits()
    train = x_all[:-300], y_all[:-300]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    levels, results = [0.0, *LEVELS], []
    for seed in range(args.seeds):
        keras.utils.set_random_seed(seed)
        dense = compile_model(digits_cnn())
        dense.fit(*train, batch_size=BATCH, epochs=args.epochs, verbose=0)
        latency = ep.measure_latency_model(dense, dense_tflite=ep.export_tflite(dense),
                                           cache_dir=args.cache_dir, statistic=args.statistic,
                                           calibration=args.calibration, progress=False,
                                           **python)
        table = ep.sensitivity_scan(
            dense, lambda m: float(loss(y_all[-300:], m(x_all[-300:], training=False))),
            higher_is_better=False, sparsities=LEVELS, structure="channels", progress=False)
        target = latency.dense_measured_ms * float(args.digits_target)
        chosen = latency.kept_channels(ep.allocate(table, target, budget="latency",
                                                   latency_model=latency).sparsity)
        build = Builder(dense, latency, ep.export_tflite)
        sizes, steps = latency.sizes, latency.round_to
        print(f"\n### seed {seed}: every plan predicted under {1.15e3 * target:.1f} µs "
              f"(target {1e3 * target:.1f} µs), fine-tuned {args.tune_epochs} epochs\n")
        print("| kept channels | predicted (µs) | scan drop | MACs kept | test accuracy |")
        print("|---|---|---|---|---|")
        rows = []
        for kept in itertools.product(*[range(steps[g], sizes[g] + 1, steps[g]) for g in sizes]):
            sparsity = {g: 1 - k / sizes[g] for g, k in zip(sizes, kept)}
            if latency.predict_ms(sparsity) > 1.15 * target:
                continue
            keras.utils.set_random_seed(seed)
            small = compile_model(build.new_small(sparsity))
            small.fit(*train, batch_size=BATCH, epochs=args.tune_epochs, verbose=0)
            rows.append({"kept": kept, "predicted_ms": latency.predict_ms(sparsity),
                         "scan_drop": sum(float(np.interp(sparsity[g], levels,
                                                          [0.0, *table.drop(g)]))
                                          for g in sizes),
                         "macs": macs_of(small) / macs_of(dense),
                         "accuracy": accuracy(small, *test),
                         "latency_plan": dict(zip(sizes, kept)) == chosen})
        for row in sorted(rows, key=lambda r: r["predicted_ms"]):
            mark = " (latency plan)" if row["latency_plan"] else ""
            print(f"| {'/'.join(map(str, row['kept']))}{mark} | {1e3 * row['predicted_ms']:.1f} "
                  f"| {row['scan_drop']:.3f} | {row['macs']:.1%} | {row['accuracy']:.2%} |")
        results.append(rows)
    return results


def summarize(results, tolerance):
    for other in ("uniform", "MACs-budgeted"):
        gains = [100 * (r["latency-budgeted"]["accuracy"] - r[other]["accuracy"])
                 for r in results]
        gaps = [r[other]["ratio"] - 1 for r in results]
        print(f"latency-budgeted minus the closest {other} twin: mean {np.mean(gains):+.2f} "
              f"points, {sum(g > 0 for g in gains)} of {len(gains)} seeds ahead "
              f"({', '.join(f'{g:+.2f}' for g in gains)}); the twin's measured latency "
              f"{', '.join(f'{g:+.1%}' for g in gaps)} against the plan's")
        equal = [(100 * (r["latency-budgeted"]["accuracy"] - r[other]["at_plan_latency"]))
                 for r in results if r[other].get("at_plan_latency") is not None]
        if equal:
            print(f"  at equal measured latency (within ±{tolerance:.0%}, else interpolated): "
                  f"mean {np.mean(equal):+.2f} points over {len(equal)} seeds, "
                  f"{sum(g > 0 for g in equal)} ahead ({', '.join(f'{g:+.2f}' for g in equal)})")


def steps(runs, python):
    """Latency of one float32 layer at many widths (interleaved): where XNNPACK's tiles step.
    The digits CNN's second convolution (8x8, 3x3, 32 inputs) and a MobileNetV2-like 1x1
    convolution (14x14, 96 inputs), by output channels."""
    layers = {"3x3 conv, 8x8, 32 in": Probe("conv", (8, 8), (3, 3), (1, 1), "same", (1, 1), 32, 64),
              "1x1 conv, 14x14, 96 in": Probe("conv", (14, 14), (1, 1), (1, 1), "same", (1, 1),
                                              96, 64)}
    widths = (8, 16, 24, 32, 33, 40, 48, 56, 64, 65, 80, 96, 112, 128)
    models = {(name, w): probe.resized(cout=w).flatbuffer("float32")
              for name, probe in layers.items() for w in widths}
    measured = interleaved_latency(models, runs, **python)
    print(f"\n### One layer, float32, 1 thread, by output channels ({runs} interleaved runs, "
          "median µs)\n")
    print("| layer | " + " | ".join(map(str, widths)) + " |")
    print("|---|" + "---|" * len(widths))
    for name in layers:
        print(f"| {name} | " + " | ".join(f"{measured[name, w]['p50_us']:.1f}" for w in widths)
              + " |")
    return {f"{name}/{w}": measured[name, w] for name, w in models}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["mobilenet", "digits", "plans", "steps"])
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
    parser.add_argument("--digits_target", default=fractions.Fraction(1, 2),
                        type=fractions.Fraction,
                        help="digits, plans: the latency target, a fraction of dense (1/3)")
    parser.add_argument("--twins_at", default="1/3",
                        help="mobilenet: targets (of 1/2,1/3,1/5) whose uniform and "
                             "MACs-budgeted twins are matched and measured too")
    parser.add_argument("--rounds", type=int, default=3,
                        help="most twin candidates timed against each latency plan")
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="a twin within this of the latency plan's measured latency matches")
    parser.add_argument("--plan_rounds", type=int, default=3,
                        help="mobilenet: latency plans measured and corrected at most this "
                             "often (ep.plan_for_latency; 1: the latency model's plan alone)")
    parser.add_argument("--plan_tolerance", type=float, default=0.05,
                        help="mobilenet: a plan within this of its target stops correcting")
    parser.add_argument("--final_repeats", type=int, default=1,
                        help="mobilenet: interleaved runs of the final models (median, range)")
    parser.add_argument("--python", help="the Python that times the models (device_bench's "
                                         "local target option), e.g. a `nice -n -20` wrapper")
    parser.add_argument("--output", help="also write the figures as JSON here")
    args = parser.parse_args()
    one_thread()
    start = time.time()
    python = {"python": args.python} if args.python else {}
    if args.part == "mobilenet":
        result = [mobilenet(p, args.runs, args.cache_dir, args.statistic, args.calibration,
                            python, args.twins_at.split(","), args.rounds, args.tolerance,
                            args.plan_rounds, args.plan_tolerance, args.final_repeats)
                  for p in args.precisions.split(",")]
    elif args.part == "digits":
        result = digits(args, python)
    elif args.part == "plans":
        result = all_plans(args, python)
    else:
        result = steps(args.runs, python)
    print(f"\nwall time {time.time() - start:.0f} s")
    if args.output:
        atomic_write(args.output, json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
