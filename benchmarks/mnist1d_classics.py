"""The classic pruning results, reproduced on MNIST-1D (a published benchmark) with edgeprune.

    python benchmarks/mnist1d_classics.py [--parts dense,gradual,lottery,criteria,allocation,chain]
        [--models cnn,mlp] [--seeds 3] [--epochs 40] [--finetune-epochs 10]
        [--out benchmarks/results/mnist1d] [--report-only]

Data: `ep.load_mnist1d()`, the benchmark's standard 4,000/1,000 split (seed 42, length 40), the
same for every seed; the seed sets the initialization and the shuffling. The test split is used
only for the figures: nothing is chosen on it.

Models, as in the MNIST-1D repository (notebooks/models.py):
- cnn: Conv1D(25, 5, stride 2) -> Conv1D(25, 3, stride 2) -> Conv1D(25, 3, stride 2), each with
  padding 1 and ReLU, then Flatten -> Dense(10); 5,210 parameters;
- mlp: Dense(100) -> ReLU, plus a residual Dense(100) -> ReLU, then Dense(10); 15,210 parameters;
- cnn_bn (part "criteria" only): the cnn with BatchNormalization after each convolution.
Dense training as the repository's train.py: Adam at 1e-2, batch 100 (the repository runs 8,000
steps, 200 epochs; `--epochs` sets ours).

Parts (each seed, each model; fine-tuning is `--finetune-epochs` at Adam 1e-3, and every pruned
variant of a seed fine-tunes from the same dense weights with the same shuffling, so the per-seed
differences are paired):
1. dense: test accuracy against the paper's (CNN 94%, MLP 68%), and the dense model fine-tuned
   for the same epochs as the pruned ones (the fair reference for them).
2. gradual: Zhu & Gupta. Gradual `PolynomialDecay` (0 to the target over the first half of
   fine-tuning, every 10 steps) against one-shot (`ConstantSparsity` forced at the target on the
   trained model, masks then fixed), same fine-tuning, at each `--sparsities` level (per layer).
3. lottery: Frankle & Carbin. `ep.iterative_magnitude_pruning` from the initialization,
   `--lottery-rounds` rounds to `--lottery-sparsity` (each round removes the same share of what is
   left), survivors rewound to step `--rewind-step` (0: the initialization), each round trained as
   the dense model but for `--lottery-epochs`. Control: the same masks with a fresh random
   initialization (another draw of the same initializers), trained the same way.
4. criteria (cnn_bn): Molchanov et al. One-shot channel pruning at each `--channel-sparsities`
   level with l1, l2, bn_gamma and taylor (gradients summed over every training batch), then
   `shrink` and fine-tune the smaller model. Every criterion removes the same channels per layer,
   so the same MACs.
5. allocation: at `--allocation-sparsity` unstructured, uniform against global magnitude
   (`global_magnitude_allocation`) against sensitivity-allocated (`sensitivity_scan` of the
   cross-entropy on 1,000 training samples, then `allocate`), gradual as in part 2.
6. chain: the gradual 90% (`--chain-sparsity`) model of part 2, stripped, exported with
   `ep.export_tflite(quantize="int8")` (200 training samples for calibration) and run by
   `ep.validate_tflite` on the test split, against its Keras accuracy; the dense model too.

Results: `results.json` (every per-seed figure, written after each part so an interrupted run
keeps what finished), `results.md` (the tables printed at the end) and PNG plots, all in `--out`.
`--report-only` re-reads `results.json` and prints the tables and plots again.
"""

import argparse
import gzip
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

PARTS = ("dense", "gradual", "lottery", "criteria", "allocation", "chain")
PAPER = {"cnn": 94.0, "mlp": 68.0}  # Greydanus & Kobak, test accuracy with the default split
CRITERIA = ("l1", "l2", "bn_gamma", "taylor")
SCAN_LEVELS = (0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98)


# ----------------------------------------------------------------------------------------------
# models and training

def build(kind, seed):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((40, 1), name="signal")
    if kind == "mlp":
        h = layers.Flatten(name="flatten")(inputs)
        h = layers.Dense(100, activation="relu", name="fc1")(h)
        h = layers.Add(name="residual")([h, layers.Dense(100, activation="relu", name="fc2")(h)])
        return keras.Model(inputs, layers.Dense(10, name="head")(h), name=kind)
    h = inputs
    for index, kernel in enumerate((5, 3, 3), start=1):
        h = layers.ZeroPadding1D(1, name=f"pad{index}")(h)
        if kind == "cnn_bn":
            h = layers.Conv1D(25, kernel, strides=2, use_bias=False, name=f"conv{index}")(h)
            h = layers.BatchNormalization(name=f"bn{index}")(h)
            h = layers.ReLU(name=f"relu{index}")(h)
        else:
            h = layers.Conv1D(25, kernel, strides=2, activation="relu", name=f"conv{index}")(h)
    h = layers.Flatten(name="flatten")(h)
    return keras.Model(inputs, layers.Dense(10, name="head")(h), name=kind)


class Bench:
    """Data, settings and the progress bar shared by every part."""

    def __init__(self, args):
        import edgeprune as ep

        self.args = args
        (self.x, self.y), (self.xt, self.yt) = ep.load_mnist1d(num_samples=args.num_samples)
        self.steps_per_epoch = int(np.ceil(len(self.x) / args.batch))
        self.bar = None

    def compile(self, model, lr):
        import keras

        model.compile(keras.optimizers.Adam(lr),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    def fit(self, model, epochs, lr, seed, callbacks=()):
        """Compiles `model` with a fresh Adam and trains it; the seed fixes the shuffling."""
        import keras

        keras.utils.set_random_seed(seed)
        self.compile(model, lr)
        model.fit(self.x, self.y, batch_size=self.args.batch, epochs=epochs, verbose=0,
                  callbacks=[*callbacks, self.bar_callback()])
        return model

    def bar_callback(self):
        import keras

        bench = self

        class EpochTick(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if bench.bar is not None:
                    bench.bar.update(1)
        return EpochTick()

    def accuracy(self, model):
        """Test accuracy in percent (a pruned model's forward pass applies its masks)."""
        logits = np.asarray(model(self.xt, training=False))
        return float(100 * np.mean(np.argmax(logits, -1) == self.yt))

    def dense(self, kind, seed, cache):
        if (kind, seed) not in cache:
            cache[kind, seed] = self.fit(build(kind, seed), self.args.epochs, self.args.lr, seed)
        return cache[kind, seed]


def one_shot(model, sparsity_or_schedules):
    """A wrapped copy of `model` pruned once, now, and never again (`end_step=0`)."""
    import edgeprune as ep

    if isinstance(sparsity_or_schedules, dict):
        schedule = sparsity_or_schedules
    else:
        schedule = ep.ConstantSparsity(sparsity_or_schedules, begin_step=0, end_step=0)
    pruned = ep.prune_low_magnitude(model, pruning_schedule=schedule)
    controller = ep.PruningController(pruned)
    controller.begin()
    controller.update_masks(force=True)
    return pruned


def decay(bench, sparsity):
    """Gradual: 0 to `sparsity` over the first half of fine-tuning, masks updated every 10 steps."""
    import edgeprune as ep

    end = bench.steps_per_epoch * bench.args.finetune_epochs // 2
    return ep.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=max(1, end),
                              frequency=max(1, min(10, end)))


def fine_tune(bench, model, seed, pruning=True):
    import edgeprune as ep

    return bench.fit(model, bench.args.finetune_epochs, bench.args.finetune_lr, seed,
                     [ep.UpdatePruningStep()] if pruning else [])


def kernel_sparsity(model):
    import edgeprune as ep

    rows = ep.sparsity_report(ep.strip_pruning(model))
    return 100 * sum(r["zeros"] for r in rows) / sum(r["size"] for r in rows)


# ----------------------------------------------------------------------------------------------
# parts: each returns one seed's figures for one model

def part_dense(bench, kind, seed, cache):
    import keras

    dense = bench.dense(kind, seed, cache)
    copy = keras.models.clone_model(dense)
    copy.set_weights(dense.get_weights())
    more = fine_tune(bench, copy, seed, pruning=False)
    return {"dense": bench.accuracy(dense), "dense + fine-tuning": bench.accuracy(more),
            "params": int(dense.count_params())}


def part_gradual(bench, kind, seed, cache):
    import edgeprune as ep

    dense = bench.dense(kind, seed, cache)
    out = {}
    for sparsity in bench.args.sparsities:
        shot = one_shot(dense, sparsity)
        before = bench.accuracy(shot)
        fine_tune(bench, shot, seed)
        gradual = fine_tune(bench, ep.prune_low_magnitude(
            dense, pruning_schedule=decay(bench, sparsity)), seed)
        if sparsity == bench.args.chain_sparsity:
            cache[kind, seed, "gradual"] = gradual
        out[f"{sparsity:g}"] = {"one-shot, before fine-tuning": before,
                                "one-shot": bench.accuracy(shot),
                                "gradual": bench.accuracy(gradual),
                                "kernel sparsity": kernel_sparsity(gradual)}
    return out


def part_lottery(bench, kind, seed, cache):
    import keras
    import edgeprune as ep
    from edgeprune.choose.iterative import round_sparsity

    args = bench.args
    lr = args.lottery_lr or args.lr

    def train(model, callbacks):
        bench.fit(model, args.lottery_epochs, lr, seed, callbacks)

    with tempfile.TemporaryDirectory(prefix="mnist1d-imp-") as directory:
        result = ep.iterative_magnitude_pruning(
            build(kind, seed), train, bench.accuracy, directory, rounds=args.lottery_rounds,
            final_sparsity=args.lottery_sparsity, rewind_step=args.rewind_step, progress=False)
        out = {"dense": result.rounds[0].metric, "rounds": {}}
        for imp_round in result.rounds[1:]:
            ticket = keras.models.load_model(os.path.join(directory, imp_round.model_path))
            level = round_sparsity(args.lottery_sparsity, imp_round.round / args.lottery_rounds)
            # The ticket's zeros are its mask: pruning it at its own sparsity selects them exactly.
            control = one_shot(ticket, level)
            ep.rewind_weights(control, ep.layer_weights(build(kind, seed + 1000)))
            train(control, [ep.UpdatePruningStep()])
            masks_match = all(  # checked after training: the masks stay fixed through it
                np.array_equal(np.asarray(w) != 0, np.asarray(t) != 0)
                for w, t in zip(ep.strip_pruning(control).get_weights(), ticket.get_weights())
                if np.ndim(w) > 1)
            out["rounds"][f"{imp_round.sparsity:.4f}"] = {
                "winning ticket": imp_round.metric, "random re-init": bench.accuracy(control),
                "masks match": bool(masks_match)}
    return out


def part_criteria(bench, kind, seed, cache):
    import keras
    import edgeprune as ep

    dense = bench.dense("cnn_bn", seed, cache)
    batches = [(bench.x[i:i + bench.args.batch], bench.y[i:i + bench.args.batch])
               for i in range(0, len(bench.x), bench.args.batch)]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    out = {"dense": bench.accuracy(dense)}
    for sparsity in bench.args.channel_sparsities:
        row = {}
        for criterion in CRITERIA:
            zeroed = ep.prune_channels(dense, sparsity, criterion=criterion, data=batches,
                                       loss=loss)
            small = ep.shrink(zeroed)
            report = ep.shrink_report(zeroed, small)
            before = bench.accuracy(small)
            fine_tune(bench, small, seed, pruning=False)
            macs, params = report.total("macs"), report.total("params")
            row[criterion] = {"one-shot": before, "fine-tuned": bench.accuracy(small),
                              "macs": [int(macs[0]), int(macs[1])],
                              "params": [int(params[0]), int(params[1])]}
        out[f"{sparsity:g}"] = row
    return out


def part_allocation(bench, kind, seed, cache):
    import keras
    import edgeprune as ep

    dense = bench.dense(kind, seed, cache)
    target = bench.args.allocation_sparsity
    xs, ys = bench.x[:1000], bench.y[:1000]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    table = ep.sensitivity_scan(dense, lambda m: float(loss(ys, m(xs, training=False))),
                                sparsities=SCAN_LEVELS, higher_is_better=False, progress=False)
    allocations = {"uniform": ep.uniform_allocation(dense, target),
                   "global magnitude": ep.global_magnitude_allocation(dense, target),
                   "sensitivity-allocated": ep.allocate(table, target)}
    out = {}
    for name, allocation in allocations.items():
        shot = one_shot(dense, allocation.schedules(
            ep.ConstantSparsity(target, begin_step=0, end_step=0)))
        gradual = fine_tune(bench, ep.prune_low_magnitude(
            dense, pruning_schedule=allocation.schedules(decay(bench, target))), seed)
        out[name] = {"one-shot": bench.accuracy(shot), "fine-tuned": bench.accuracy(gradual),
                     "kernel sparsity": kernel_sparsity(gradual),
                     "per layer": {k: round(v, 4) for k, v in allocation.sparsity.items()}}
    return out


def part_chain(bench, kind, seed, cache):
    import edgeprune as ep

    dense = bench.dense(kind, seed, cache)
    if (kind, seed, "gradual") not in cache:
        cache[kind, seed, "gradual"] = fine_tune(bench, ep.prune_low_magnitude(
            dense, pruning_schedule=decay(bench, bench.args.chain_sparsity)), seed)
    models = {"dense": dense, f"pruned {bench.args.chain_sparsity:.0%}":
              ep.strip_pruning(cache[kind, seed, "gradual"])}
    out = {}
    for name, model in models.items():
        tflite = ep.export_tflite(model, quantize="int8", representative_data=bench.x[:200])
        report = ep.validate_tflite(tflite, model, bench.xt, labels=bench.yt)
        out[name] = {"keras": 100 * report.keras_accuracy,
                     "int8 tflite": 100 * report.tflite_accuracy,
                     "top-1 agreement": 100 * report.top1_agreement, "bytes": len(tflite),
                     "gzip bytes": len(gzip.compress(tflite, 9))}
    return out


RUNNERS = {"dense": part_dense, "gradual": part_gradual, "lottery": part_lottery,
           "criteria": part_criteria, "allocation": part_allocation, "chain": part_chain}


def total_epochs(args, parts, kinds):
    e, f = args.epochs, args.finetune_epochs
    unstructured = [k for k in kinds if k != "cnn_bn"]
    total = 0
    if {"dense", "gradual", "allocation", "chain"} & set(parts):
        total += e * len(unstructured)
    cost = {"dense": f, "gradual": 2 * f * len(args.sparsities),
            "lottery": (2 * args.lottery_rounds + 1) * args.lottery_epochs, "allocation": 3 * f,
            "chain": 0 if "gradual" in parts and args.chain_sparsity in args.sparsities else f}
    total += sum(cost[p] for p in parts if p != "criteria") * len(unstructured)
    if "criteria" in parts and "cnn" in kinds:
        total += e + len(CRITERIA) * len(args.channel_sparsities) * f
    return total * args.seeds


def run(args):
    from tqdm.auto import tqdm

    bench = Bench(args)
    results = {"config": {k: v for k, v in vars(args).items() if k != "report_only"},
               "train": len(bench.x), "test": len(bench.xt), "runs": {}, "seconds": {}}
    path = os.path.join(args.out, "results.json")
    started = time.time()
    with tqdm(total=total_epochs(args, args.parts, args.models), desc="training epochs",
              unit="ep", dynamic_ncols=True, mininterval=2) as bar:
        bench.bar = bar
        for seed in range(args.seeds):
            cache = {}
            for kind in args.models:
                for part in args.parts:
                    if part == "criteria" and kind != "cnn":
                        continue
                    bar.set_postfix_str(f"seed {seed} {kind} {part}")
                    began = time.time()
                    figures = RUNNERS[part](bench, kind, seed, cache)
                    model = "cnn_bn" if part == "criteria" else kind
                    results["runs"].setdefault(part, {}).setdefault(model, []).append(figures)
                    seconds = results["seconds"].setdefault(part, {})
                    seconds[model] = seconds.get(model, 0.0) + time.time() - began
                    results["total seconds"] = time.time() - started
                    write_json(path, results)
                cache.pop((kind, seed), None)
    return results


def write_json(path, data):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(data, handle, indent=1)
    os.replace(temporary, path)


# ----------------------------------------------------------------------------------------------
# report

def spread(values):
    values = np.asarray(values, float)
    if len(values) == 1:
        return f"{values[0]:.2f}%"
    return f"{values.mean():.2f}% ({values.min():.1f}-{values.max():.1f})"


def paired(a, b):
    n = min(len(a), len(b))  # an interrupted run may hold more seeds of one part than another
    d = np.asarray(a[:n], float) - np.asarray(b[:n], float)
    return f"{d.mean():+.2f} (" + ", ".join(f"{v:+.1f}" for v in d) + ")"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(results):
    runs, config = results["runs"], results["config"]
    seeds = config["seeds"]
    out = [f"# MNIST-1D classics ({results['train']} train / {results['test']} test, {seeds} "
           f"seed(s); dense {config['epochs']} epochs at Adam {config['lr']:g}, fine-tuning "
           f"{config['finetune_epochs']} epochs at {config['finetune_lr']:g}, batch "
           f"{config['batch']}). Test accuracy: mean (min-max) over seeds; paired differences "
           "in points: mean (per seed)."]
    if "dense" in runs:
        rows = []
        for kind, seeds_ in runs["dense"].items():
            acc = [s["dense"] for s in seeds_]
            rows.append([kind, f"{PAPER[kind]:.0f}%", spread(acc),
                         f"{np.mean(acc) - PAPER[kind]:+.2f}",
                         spread([s["dense + fine-tuning"] for s in seeds_]),
                         f"{seeds_[0]['params']:,}"])
        out += ["\n## 1. Dense baselines against the paper",
                table(["model", "paper", "edgeprune (Keras)", "vs paper (points)",
                       f"+{config['finetune_epochs']} epochs at {config['finetune_lr']:g}",
                       "parameters"], rows)]
    if "gradual" in runs:
        out.append("\n## 2. Gradual (Zhu & Gupta) vs one-shot, same fine-tuning")
        for kind, seeds_ in runs["gradual"].items():
            reference = ([s["dense + fine-tuning"] for s in runs["dense"][kind]]
                         if kind in runs.get("dense", {}) else None)
            rows = []
            for level in seeds_[0]:
                get = lambda key: [s[level][key] for s in seeds_]  # noqa: E731
                row = [f"{float(level):.0%}", spread(get("one-shot, before fine-tuning")),
                       spread(get("one-shot")), spread(get("gradual")),
                       paired(get("gradual"), get("one-shot"))]
                if reference:
                    row.append(paired(get("gradual"), reference))
                rows.append(row)
            header = ["sparsity", "one-shot, no fine-tuning", "one-shot + fine-tuning",
                      "gradual", "gradual minus one-shot"]
            if reference:
                header.append("gradual minus dense (same epochs)")
            out += [f"\n{kind}:", table(header, rows)]
    if "lottery" in runs:
        out.append(f"\n## 3. Lottery ticket (Frankle & Carbin): IMP, rewind to step "
                   f"{config['rewind_step']}, vs the same masks randomly re-initialized; "
                   f"each round trains {config['lottery_epochs']} epochs at Adam "
                   f"{config['lottery_lr'] or config['lr']:g}")
        for kind, seeds_ in runs["lottery"].items():
            rows = [["0% (dense)", spread([s["dense"] for s in seeds_]), "", "", ""]]
            for level in seeds_[0]["rounds"]:
                get = lambda key: [s["rounds"][level][key] for s in seeds_]  # noqa: E731
                rows.append([f"{float(level):.1%}", spread(get("winning ticket")),
                             spread(get("random re-init")),
                             paired(get("winning ticket"), get("random re-init")),
                             "yes" if all(get("masks match")) else "NO"])
            out += [f"\n{kind}:", table(["sparsity", "winning ticket", "random re-init",
                                         "ticket minus random", "same masks"], rows)]
    if "criteria" in runs:
        seeds_ = runs["criteria"]["cnn_bn"]
        out.append("\n## 4. Channel criteria (Molchanov et al.), cnn_bn, one-shot + shrink + "
                   "fine-tuning")
        out.append(f"dense cnn_bn: {spread([s['dense'] for s in seeds_])}")
        for level in [k for k in seeds_[0] if k != "dense"]:
            rows = []
            for criterion in CRITERIA:
                get = lambda key: [s[level][criterion][key] for s in seeds_]  # noqa: E731
                macs = seeds_[0][level][criterion]["macs"]
                rows.append([criterion, f"{macs[0]:,} -> {macs[1]:,}", spread(get("one-shot")),
                             spread(get("fine-tuned")),
                             paired(get("fine-tuned"),
                                    [s[level]["l1"]["fine-tuned"] for s in seeds_])])
            out += [f"\n{float(level):.0%} of the channels:",
                    table(["criterion", "MACs", "one-shot", "fine-tuned",
                           "fine-tuned minus l1"], rows)]
    if "allocation" in runs:
        out.append(f"\n## 5. Allocation at {config['allocation_sparsity']:.0%} unstructured, "
                   "gradual, same fine-tuning")
        for kind, seeds_ in runs["allocation"].items():
            rows = []
            for plan in seeds_[0]:
                get = lambda key: [s[plan][key] for s in seeds_]  # noqa: E731
                rows.append([plan, f"{np.mean(get('kernel sparsity')):.1f}%",
                             spread(get("one-shot")), spread(get("fine-tuned")),
                             paired(get("fine-tuned"), [s["uniform"]["fine-tuned"]
                                                        for s in seeds_]),
                             ", ".join(f"{k} {v:.2f}" for k, v in seeds_[0][plan]
                                       ["per layer"].items())])
            out += [f"\n{kind}:", table(["plan", "kernel sparsity", "one-shot", "fine-tuned",
                                         "minus uniform", "per layer (seed 0)"], rows)]
    if "chain" in runs:
        rows = []
        for kind, seeds_ in runs["chain"].items():
            for name in seeds_[0]:
                get = lambda key: [s[name][key] for s in seeds_]  # noqa: E731
                rows.append([kind, name, spread(get("keras")), spread(get("int8 tflite")),
                             paired(get("int8 tflite"), get("keras")),
                             f"{np.mean(get('top-1 agreement')):.1f}%",
                             f"{np.mean(get('bytes')):,.0f}", f"{np.mean(get('gzip bytes')):,.0f}"])
        out += ["\n## 6. The whole chain: int8 .tflite (LiteRT) vs Keras, test split",
                table(["model", "variant", "Keras", "int8 .tflite", "tflite minus Keras",
                       "top-1 agreement", "bytes", "gzip -9 bytes"], rows)]
    seconds = results.get("seconds", {})
    if seconds:
        out.append("\nWall time: " + ", ".join(
            f"{part} {sum(v.values()) / 60:.1f} min" for part, v in seconds.items())
            + f"; total {results.get('total seconds', 0) / 60:.1f} min.")
    return "\n".join(out)


def plots(results, folder):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, written = results["runs"], []

    def band(ax, xs, values, label, **style):
        values = np.asarray(values, float)
        mean = values.mean(axis=1)
        ax.errorbar(xs, mean, yerr=[mean - values.min(axis=1), values.max(axis=1) - mean],
                    label=label, capsize=3, marker="o", markersize=3, **style)

    def save(fig, name):
        fig.tight_layout()
        path = os.path.join(folder, name)
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)

    if "gradual" in runs:
        kinds = list(runs["gradual"])
        fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.2), squeeze=False)
        for ax, kind in zip(axes[0], kinds):
            seeds_ = runs["gradual"][kind]
            levels = list(seeds_[0])
            xs = [100 * float(level) for level in levels]
            for key, style in (("gradual", "-"), ("one-shot", "--"),
                               ("one-shot, before fine-tuning", ":")):
                band(ax, xs, [[s[level][key] for s in seeds_] for level in levels], key,
                     linestyle=style)
            if kind in runs.get("dense", {}):
                ax.axhline(np.mean([s["dense + fine-tuning"] for s in runs["dense"][kind]]),
                           color="gray", linewidth=0.8, label="dense")
            ax.set(title=f"{kind}: gradual vs one-shot", xlabel="sparsity (%)",
                   ylabel="test accuracy (%)")
            ax.legend(fontsize=7)
        save(fig, "gradual_vs_oneshot.png")
    if "lottery" in runs:
        kinds = list(runs["lottery"])
        fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.2), squeeze=False)
        for ax, kind in zip(axes[0], kinds):
            seeds_ = runs["lottery"][kind]
            levels = list(seeds_[0]["rounds"])
            xs = [0.0] + [100 * float(level) for level in levels]
            for key, style in (("winning ticket", "-"), ("random re-init", "--")):
                values = [[s["dense"] for s in seeds_]] + [
                    [s["rounds"][level][key] for s in seeds_] for level in levels]
                band(ax, xs, values, key, linestyle=style)
            ax.set(title=f"{kind}: lottery ticket", xlabel="sparsity (%)",
                   ylabel="test accuracy (%)")
            ax.legend(fontsize=7)
        save(fig, "lottery.png")
    if "criteria" in runs:
        seeds_ = runs["criteria"]["cnn_bn"]
        levels = [k for k in seeds_[0] if k != "dense"]
        fig, ax = plt.subplots(figsize=(5.2, 3.2))
        width = 0.8 / len(CRITERIA)
        for i, criterion in enumerate(CRITERIA):
            values = np.array([[s[level][criterion]["fine-tuned"] for s in seeds_]
                               for level in levels])
            mean = values.mean(axis=1)
            ax.bar(np.arange(len(levels)) + i * width, mean, width, label=criterion,
                   yerr=[mean - values.min(axis=1), values.max(axis=1) - mean], capsize=2)
        ax.set_xticks(np.arange(len(levels)) + 0.4 - width / 2,
                      [f"{float(level):.0%} channels" for level in levels])
        low = min(s[level][c]["fine-tuned"] for s in seeds_ for level in levels
                  for c in CRITERIA)
        ax.set_ylim(max(0, low - 5), 100)
        ax.set(title="cnn_bn: channel criteria, fine-tuned", ylabel="test accuracy (%)")
        ax.legend(fontsize=7, ncol=2)
        save(fig, "criteria.png")
    return written


# ----------------------------------------------------------------------------------------------

def levels(text):
    return tuple(float(v) for v in text.split(","))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="comma-separated, from " + ",".join(PARTS))
    parser.add_argument("--models", default="cnn,mlp", help="cnn, mlp or both")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40,
                        help="dense training; the paper's repo: 200")
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--lottery-epochs", type=int, default=25,
                        help="training of each lottery round (round 0 dense, tickets, controls)")
    parser.add_argument("--lr", type=float, default=1e-2, help="dense training (the paper's)")
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--lottery-lr", type=float, default=None, help="default: --lr")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--sparsities", type=levels, default=(0.5, 0.75, 0.9, 0.95, 0.98))
    parser.add_argument("--lottery-rounds", type=int, default=4)
    parser.add_argument("--lottery-sparsity", type=float, default=0.95)
    parser.add_argument("--rewind-step", type=int, default=0,
                        help="0: back to the initialization (Frankle & Carbin 2019)")
    parser.add_argument("--channel-sparsities", type=levels, default=(0.5, 0.75))
    parser.add_argument("--allocation-sparsity", type=float, default=0.9)
    parser.add_argument("--chain-sparsity", type=float, default=0.9)
    parser.add_argument("--num-samples", type=int, default=5000,
                        help="MNIST-1D size (the benchmark's: 5000); smaller only for smoke runs")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "mnist1d"))
    parser.add_argument("--report-only", action="store_true",
                        help="print the tables and plots of an earlier run's results.json")
    args = parser.parse_args(argv)
    args.parts = [p for p in args.parts.split(",") if p]
    args.models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(args.parts) - set(PARTS)) + sorted(set(args.models) - set(PAPER))
    if unknown:
        parser.error(f"unknown part(s) or model(s): {unknown}")
    os.makedirs(args.out, exist_ok=True)
    if args.report_only:
        with open(os.path.join(args.out, "results.json")) as handle:
            results = json.load(handle)
    else:
        results = run(args)
    text = report(results)
    with open(os.path.join(args.out, "results.md"), "w") as handle:
        handle.write(text + "\n")
    written = plots(results, args.out)
    print("\n" + text)
    print("\nWritten: " + ", ".join([os.path.join(args.out, "results.json"),
                                     os.path.join(args.out, "results.md"), *written]))


if __name__ == "__main__":
    main()
