"""The report's plots (matplotlib, drawn off-screen): channels and sparsity per layer, the
accuracy/size/latency trade-off of the runs, the IMP rounds, and a latency budget's predicted
against measured latency; each returned as PNG bytes."""

import io

# One colour per run in the plots (matplotlib's default cycle).
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def sparsity_chart(run):
    """Bar chart of kernel sparsity per layer of the run's last Keras model, as PNG bytes; None
    when no layer is sparse (nothing to show)."""
    keras_rows = [row for row in run.rows if row["kind"] == "keras" and row.get("layers")]
    if not keras_rows:
        return None
    layers = [layer for layer in keras_rows[-1]["layers"] if layer["macs"] or layer["params"]]
    if not any(layer["kernel_sparsity"] for layer in layers):
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 0.3 * len(layers) + 1.2))
    values = [100 * layer["kernel_sparsity"] for layer in layers]
    axes.barh([layer["name"] for layer in layers], values, color="#4c72b0")
    for index, value in enumerate(values):
        axes.text(min(value, 100) + 1, index, f"{value:.0f}%", va="center", fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 110)
    axes.set_xticks([0, 20, 40, 60, 80, 100])
    axes.set_xlabel("kernel sparsity (%)")
    axes.set_title(f"{run.name}: {keras_rows[-1]['label']}")
    return _png(figure)


def tradeoff_plot(runs, targets):
    """Accuracy against gzip size, and against p50 latency on the first target that measured
    one, for every `.tflite` of every run: one colour per run, an arrow from the baseline to the
    final model. None when no run reached convert."""
    points = [(index, [row for row in run.rows if row["kind"] == "tflite"])
              for index, run in enumerate(runs)]
    if not any(rows for _, rows in points):
        return None
    target = next((t for t in targets if any((row["latency"].get(t) or {}).get("p50_us")
                                             for _, rows in points for row in rows)), None)
    plt = _pyplot()
    panels = 2 if target else 1
    figure, axes = plt.subplots(1, panels, figsize=(4.6 * panels + 0.6, 4), squeeze=False)
    axes = axes[0]
    accuracies = []
    for panel, (axis, label) in enumerate(zip(axes, ["gzip size (KiB)",
                                                      f"p50 latency on {target} (µs)"])):
        xs_all = []
        for index, rows in points:
            run = runs[index]
            colour = COLOURS[index % len(COLOURS)]
            if panel == 0:
                xy = [(row["gzip_bytes"] / 1024, row) for row in rows]
            else:
                xy = [((row["latency"].get(target) or {}).get("p50_us"), row) for row in rows]
                xy = [(x, row) for x, row in xy if x]
            if not xy:
                continue
            xs = [x for x, _ in xy]
            ys = [100 * (row.get("accuracy") or 0) for _, row in xy]
            xs_all += xs
            accuracies += ys
            if len(xy) > 1:
                axis.annotate("", xy=(xs[-1], ys[-1]), xytext=(xs[0], ys[0]),
                              arrowprops={"arrowstyle": "->", "color": colour, "alpha": 0.6})
            for (x, row), y in zip(xy, ys):
                final = row["file"] != "baseline.tflite"
                axis.scatter([x], [y], s=60, color=colour if final else "white",
                             edgecolors=colour, linewidths=1.5, zorder=3,
                             label=run.name if final and panel == 0 else None)
        _plain_log_axis(axis, xs_all)
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    low = min(accuracies) if accuracies else 0
    high = max(accuracies) if accuracies else 100
    margin = max(1.0, 0.1 * (high - low))
    for axis in axes:
        axis.set_ylim(max(0.0, low - margin), min(100.0, high + margin))
        if high + margin >= 100:
            axis.set_ylim(top=100.5)  # points at 100% stay visible; the axis stops there
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title("accuracy vs size", fontsize=10)
    if target:
        axes[1].set_title(f"accuracy vs latency ({target})", fontsize=10)
    if any(row["file"] == "baseline.tflite" for _, rows in points for row in rows):
        axes[0].scatter([], [], s=60, color="white", edgecolors="grey", label="dense baseline")
    axes[0].legend(fontsize=8, loc="best")
    return _png(figure)


def imp_plot(run):
    """Test accuracy per round of iterative pruning, each round's sparsity under it."""
    if not run.imp_rounds:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.4))
    rounds = [r["round"] for r in run.imp_rounds]
    accuracy = [100 * r["metric"] for r in run.imp_rounds]
    axis.plot(rounds, accuracy, marker="o", color="#4c72b0")
    axis.set_xticks(rounds, [f"{r['round']}\n{100 * r['sparsity']:.0f}%" for r in run.imp_rounds])
    low, high = min(accuracy), max(accuracy)
    margin = max(1.0, 0.1 * (high - low))
    axis.set_ylim(max(0.0, low - margin), min(100.0, high + margin))
    axis.set_xlabel("IMP round (sparsity)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(f"{run.name}: iterative magnitude pruning", fontsize=10)
    axis.grid(alpha=0.3)
    return _png(figure)


def latency_budget_plot(run):
    """Predicted against measured latency of a latency-budgeted run's models (bars), the budget
    dashed; None for other runs."""
    from edgeprune.recipe.report_text import latency_budget_rows

    rows = latency_budget_rows(run)
    if not rows:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.2))
    positions = range(len(rows))
    axis.bar([p - 0.2 for p in positions], [r[1] for r in rows], 0.4, label="predicted",
             color="#4c72b0")
    axis.bar([p + 0.2 for p in positions], [r[2] or 0 for r in rows], 0.4,
             label="measured", color="#dd8452")
    axis.axhline(run.latency_budget["budget_ms"], color="gray", linestyle="--", label="budget")
    axis.set_xticks(list(positions), [r[0] for r in rows])
    axis.set_ylabel("latency (ms)")
    axis.set_title(f"{run.name}: latency on {run.latency_budget['target']} "
                   f"({run.latency_budget['precision']}, {run.latency_budget['num_threads']} "
                   "thread(s))", fontsize=10)
    axis.legend(fontsize="small")
    return _png(figure)


def _plain_log_axis(axis, values):
    """Log scale when the values span more than a factor of 3, with plain tick labels (30, 100,
    300, not 3×10¹); linear otherwise."""
    from matplotlib import ticker

    values = [v for v in values if v]
    if not values or max(values) / min(values) <= 3:
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        if values:
            span = max(values) - min(values) or max(values) * 0.1
            axis.set_xlim(min(values) - 0.3 * span, max(values) + 0.3 * span)
        return
    axis.set_xscale("log")
    axis.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.xaxis.set_minor_formatter(ticker.NullFormatter())
    axis.set_xlim(min(values) / 1.4, max(values) * 1.4)


def _png(figure):
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    figure.clear()
    _pyplot().close(figure)
    return buffer.getvalue()


# --- the files ----------------------------------------------------------------------------------
