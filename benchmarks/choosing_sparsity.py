"""Uniform vs global vs sensitivity-allocated sparsity on the digits CNN, same fine-tuning budget.

    python benchmarks/choosing_sparsity.py [--seeds 5] [--pretrain-epochs 15] [--finetune-epochs 6]
                                           [--width 1.0]

`--width` scales every hidden layer (0.5: conv8-conv16-dense32), for a CNN with less spare
capacity than the default conv16-conv32-dense64.

For each seed: train the dense CNN, scan its sensitivity (cross-entropy on a validation split
held out of the training data: smoother than accuracy on 270 images; the test split is only used
for the final figures), then prune a copy per plan, and report test accuracy one-shot and after
fine-tuning with the same epochs and optimizer.

Unstructured, 90% of the prunable weights (every plan removes the same number, to the weight):
- uniform: every prunable layer at the target (`prune_low_magnitude`, pruning_scope="layer");
- uniform, first/last dense: `uniform_allocation(skip_first_last=True)`;
- global magnitude: one ranking over all layers (pruning_scope="global");
- sensitivity-allocated: `allocate(sensitivity_scan(...), 0.9)`.
Gradual: PolynomialDecay over the first half of fine-tuning.

Channels, 50%: one-shot channel removal, `shrink`, fine-tune the smaller model; test accuracy
after 1, 2, 3 and `--finetune-epochs` epochs of that fine-tuning (constant learning rate, so each
is what that budget alone gives). Every plan of a seed fine-tunes with the same random state
(shuffling order), so the per-seed differences between plans are paired:
- uniform: `prune_channels(sparsity=0.5)`, half of every group;
- global: `prune_channels(sparsity=0.5, pruning_scope="global")`;
- sensitivity-allocated: `allocate(channel scan, budget="params", target=<uniform's parameter
  count>)`, i.e. at the uniform plan's size.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import edgeprune as ep  # noqa: E402

BATCH = 32
LEVELS = (0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)
CHANNEL_LEVELS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)


def widths(width):
    return [max(1, round(width * units)) for units in (16, 32, 64)]


def build_cnn(seed, width=1.0):
    keras.utils.set_random_seed(seed)
    conv1, conv2, hidden = widths(width)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(conv1, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.Conv2D(conv2, 3, activation="relu", name="conv2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(hidden, activation="relu", name="hidden"),
        keras.layers.Dense(10, name="head")])


def splits(seed):
    (x, y), test = ep.load_digits()
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(0.8 * len(x))
    return (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]]), test


def accuracy_on(data):
    x, y = data

    def accuracy(model):  # a pruned model's forward pass already applies its masks
        return float(np.mean(np.argmax(model(x, training=False), -1) == y))
    return accuracy


def loss_on(data):
    x, y = data
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return lambda model: float(loss(y, model(x, training=False)))


def fit(model, train, epochs, callbacks=(), initial_epoch=0):
    if initial_epoch == 0:
        model.compile(keras.optimizers.Adam(1e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*train, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=list(callbacks),
              initial_epoch=initial_epoch)
    return model


def checkpoints(total):
    return sorted({epochs for epochs in (1, 2, 3, total) if epochs <= total})


def plans(dense, table, target, schedule):
    """Each plan as the `prune_low_magnitude` arguments that realize it with `schedule`'s shape."""
    uniform = dict(pruning_schedule=ep.with_target(schedule, target))
    return {
        "uniform": uniform,
        "uniform, first/last dense": dict(pruning_schedule=ep.uniform_allocation(
            dense, target, skip_first_last=True).schedules(schedule)),
        "global magnitude": dict(uniform, pruning_scope="global"),
        "sensitivity-allocated": dict(
            pruning_schedule=ep.allocate(table, target).schedules(schedule)),
    }


def one_shot(model, prune_args):
    pruned = ep.prune_low_magnitude(model, **prune_args)
    controller = ep.PruningController(pruned)
    controller.begin()
    controller.update_masks(force=True)
    return pruned


def nonzero_weights(model):
    return sum(r["size"] - r["zeros"] for r in ep.sparsity_report(ep.strip_pruning(model)))


def unstructured_plans(dense, train, val, test, args, seed):
    table = ep.sensitivity_scan(dense, loss_on(val), sparsities=LEVELS, higher_is_better=False,
                                progress=False)
    steps = int(np.ceil(len(train[0]) / BATCH)) * args.finetune_epochs
    decay = ep.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=steps // 2, frequency=10)
    gradual = plans(dense, table, args.sparsity, decay)
    at_once = plans(dense, table, args.sparsity, ep.ConstantSparsity(0.5, begin_step=0))
    test_accuracy = accuracy_on(test)
    results = {}
    for name, prune_args in gradual.items():
        shot = one_shot(dense, at_once[name])
        keras.utils.set_random_seed(seed)  # the same batches for every plan
        tuned = fit(ep.prune_low_magnitude(dense, **prune_args), train, args.finetune_epochs,
                    [ep.UpdatePruningStep()])
        results[name] = {"one-shot": test_accuracy(shot), "fine-tuned": test_accuracy(tuned),
                         "size": nonzero_weights(tuned)}
    return ep.allocate(table, args.sparsity), results


def channel_plans(dense, train, val, test, args, seed):
    uniform = ep.prune_channels(dense, args.channel_sparsity)
    table = ep.sensitivity_scan(dense, loss_on(val), sparsities=CHANNEL_LEVELS,
                                structure="channels", higher_is_better=False, progress=False)
    allocation = ep.allocate(table, ep.shrink(uniform).count_params(), budget="params")
    zeroed = {"uniform": uniform,
              "global": ep.prune_channels(dense, args.channel_sparsity, pruning_scope="global"),
              "sensitivity-allocated": ep.apply_channel_allocation(dense, allocation)}
    test_accuracy = accuracy_on(test)
    results = {}
    for name, model in zeroed.items():
        small = ep.shrink(model)
        results[name] = {"one-shot": test_accuracy(small), "size": small.count_params()}
        keras.utils.set_random_seed(seed)  # the same batches for every plan
        done = 0
        for epochs in checkpoints(args.finetune_epochs):
            fit(small, train, epochs, initial_epoch=done)
            results[name][f"{epochs} ep"] = test_accuracy(small)
            done = epochs
    return allocation, results


def print_table(title, runs, size_label, keys):
    print(f"\n{title}\n| plan | {size_label} | " + " | ".join(keys) + " |\n|---|---|"
          + "---|" * len(keys))
    for name in runs[0]:
        cells = [f"{np.mean([r[name]['size'] for r in runs]):.0f}"]
        for key in keys:
            values = np.array([r[name].get(key, r[name]["one-shot"]) for r in runs]) * 100
            cells.append(f"{values.mean():.2f}% ({values.min():.1f}-{values.max():.1f})")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def print_paired(runs, keys, plan, baseline="uniform"):
    """Per-seed `plan` minus `baseline`, in points: the comparison the seeds' spread hides."""
    print(f"\n{plan} minus {baseline}, test accuracy points: mean (per seed)")
    for key in keys:
        differences = [100 * (r[plan][key] - r[baseline][key]) for r in runs]
        print(f"- {key}: {np.mean(differences):+.2f} ("
              + ", ".join(f"{d:+.2f}" for d in differences) + ")")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--channel-sparsity", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--pretrain-epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=6)
    parser.add_argument("--width", type=float, default=1.0,
                        help="multiplier of the hidden layers' widths (conv16-conv32-dense64)")
    args = parser.parse_args()
    kinds = {"unstructured": unstructured_plans, "channels": channel_plans}
    runs = {kind: [] for kind in kinds}
    for seed in range(args.seeds):
        train, val, test = splits(seed)
        dense = fit(build_cnn(seed, args.width), train, args.pretrain_epochs)
        dense_row = {"one-shot": accuracy_on(test)(dense)}
        for kind, run in kinds.items():
            allocation, results = run(dense, train, val, test, args, seed)
            size = dense.count_params() if kind == "channels" else nonzero_weights(dense)
            runs[kind].append({"dense": dict(dense_row, size=size), **results})
            print(f"seed {seed} {kind}: allocated " + ", ".join(
                f"{name} {s:.3f}" for name, s in allocation.sparsity.items()), flush=True)
    common = f"{args.seeds} seeds, test accuracy mean (min-max); Adam 1e-3, batch {BATCH}"
    conv1, conv2, hidden = widths(args.width)
    print_table(f"digits CNN (conv{conv1}-conv{conv2}-dense{hidden}-dense10), "
                f"{args.sparsity:.0%} of the prunable weights removed; {common}; fine-tuning "
                f"{args.finetune_epochs} epochs, PolynomialDecay over the first half",
                runs["unstructured"],
                "nonzero prunable weights", ["one-shot", "fine-tuned"])
    print_paired(runs["unstructured"], ["one-shot", "fine-tuned"], "sensitivity-allocated")
    channel_keys = ["one-shot"] + [f"{e} ep" for e in checkpoints(args.finetune_epochs)]
    print_table(f"digits CNN, {args.channel_sparsity:.0%} channels (one-shot, shrink, then "
                f"fine-tune the smaller model for the epochs in each column); {common}",
                runs["channels"], "parameters after shrink", channel_keys)
    print_paired(runs["channels"], channel_keys, "sensitivity-allocated")


if __name__ == "__main__":
    main()
