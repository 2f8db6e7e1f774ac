"""Run reports: a Markdown file and a self-contained HTML page (plots embedded as base64 PNG), and
the short summary `edgeprune run` prints at the end.

Built from run folders' `state.json` (and `imp/imp.json` after iterative pruning) alone, so
`edgeprune report DIR [DIR ...]` redraws them any time, and several runs (recipes) are compared
in one table and one plot. Each run's section opens with a headline (how much smaller, how much
faster, the accuracy before and after) and where and with what it ran.

>>> write_report(["runs/quickstart", "runs/unstructured_80"], "runs/compare")  # doctest: +SKIP
['runs/compare/tradeoff.png', ..., 'runs/compare/report.md', 'runs/compare/report.html']
>>> print(summary_text("runs/quickstart"))  # doctest: +SKIP
"""

import base64
import dataclasses
import html
import io
import json
import os

from device_bench.fileio import atomic_write

STATE_FILE = "state.json"
SIZE_NOTE = ("Sizes: Keras rows count the weights alone (no optimizer state, no file format); "
             ".tflite rows are the files. Latency is the median of device_bench's runs.")
DASH = "—"
# One colour per run in the plots (matplotlib's default cycle).
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def read_state(folder):
    """A run folder's `state.json` as a dict (`{}` when there is none)."""
    path = os.path.join(folder, STATE_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@dataclasses.dataclass
class Run:
    """What a report shows of one run folder."""

    name: str
    folder: str
    rows: list            # one per artifact, each with its `latency` {target: {...}}
    seconds: dict         # stage -> duration
    environment: dict     # recorded by the baseline stage (empty for older runs)
    targets: dict         # benchmark target -> {settings, runtime}
    imp_rounds: list      # iterative pruning: [{round, sparsity, metric}], else []
    reports: dict         # the report stage's output files


def load_run(folder):
    """The `Run` of a run folder: one row per artifact with latencies merged in."""
    state = read_state(folder)
    if not state:
        raise FileNotFoundError(f"{folder}: no {STATE_FILE}; is it an `edgeprune run` folder?")
    finished = state["finished"]
    benchmark = finished.get("benchmark", {})
    latency = benchmark.get("latency", {})
    rows = [{**row, "latency": latency.get(row["file"], {})}
            for record in finished.values() for row in record.get("artifacts", [])]
    seconds = {name: record["seconds"] for name, record in finished.items()}
    return Run(state.get("name", os.path.basename(folder)), os.fspath(folder), rows, seconds,
               finished.get("baseline", {}).get("environment", {}),
               benchmark.get("targets", {}), _imp_rounds(folder, finished),
               finished.get("report", {}).get("outputs", {}))


def _imp_rounds(folder, finished):
    imp = finished.get("prune", {}).get("outputs", {}).get("imp")
    path = os.path.join(folder, imp) if imp else None
    if not path or not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [{"round": r["round"], "sparsity": r["sparsity"], "metric": r["metric"]}
                for r in json.load(f)["rounds"]]


def targets_of(runs):
    """Every benchmark target named in `runs`, in first-seen order."""
    seen = {}
    for run in runs:
        for row in run.rows:
            seen.update(dict.fromkeys(row["latency"]))
    return list(seen)


# --- the headline: before -> after ------------------------------------------------------------

def headline(run):
    """Before -> after figures of a run: the dense baseline against the final model.

    Returns a dict with `before`, `after` (the compared rows: the baseline and final `.tflite`
    when both exist, else the Keras baseline and the last artifact), `accuracy`, `gzip_bytes`,
    `raw_bytes`, `params` (the baseline's parameters, the last Keras model's nonzero ones) as
    `(before, after)` pairs, `latency` `{target: (before p50, after p50, speed-up, (low, high))}`
    and the microcontroller `verdicts`. None when the run has no artifact yet.
    """
    rows = run.rows
    if not rows:
        return None
    by_file = {row["file"]: row for row in rows}
    keras_rows = [row for row in rows if row["kind"] == "keras"]
    before = by_file.get("baseline.tflite") or (keras_rows[0] if keras_rows else rows[0])
    after = by_file.get("model.tflite") or rows[-1]
    result = {"before": before, "after": after,
              "accuracy": (before.get("accuracy"), after.get("accuracy")),
              "gzip_bytes": (before["gzip_bytes"], after["gzip_bytes"]),
              "raw_bytes": (before["raw_bytes"], after["raw_bytes"]), "latency": {},
              "verdicts": []}
    if keras_rows:
        result["params"] = (keras_rows[0].get("params"), keras_rows[-1].get("nonzero_params"))
    for target, value in after["latency"].items():
        value = value or {}
        if value.get("micro") and value["micro"].get("verdict"):
            result["verdicts"].append((target, value["micro"]["verdict"]))
        base = (before["latency"].get(target) or {}).get("p50_us")
        if value.get("p50_us") is None or base is None or before is after:
            continue
        ratio = value.get("vs_first")
        if ratio and ratio.get("median"):
            speedup = 1 / ratio["median"]
            spread = (1 / ratio["p95"], 1 / ratio["p5"]) if ratio.get("p5") else None
        else:
            speedup, spread = base / value["p50_us"], None
        result["latency"][target] = (base, value["p50_us"], speedup, spread)
    return result


def headline_text(figures):
    """One line: compression, speed-up per target, accuracy change."""
    if figures is None:
        return "no artifact yet"
    parts = []
    gzip_before, gzip_after = figures["gzip_bytes"]
    if figures["before"] is not figures["after"]:
        parts.append(f"{figures['after']['label']} vs {figures['before']['label']}:")
        parts.append(f"{_times(gzip_before / gzip_after, 'smaller', 'larger')} "
                     f"(gzip {_bytes(gzip_before)} → {_bytes(gzip_after)})")
    for target, (base, value, speedup, _) in figures["latency"].items():
        parts.append(f"{_times(speedup, 'faster', 'slower')} on {target} "
                     f"(p50 {_us(base)} → {_us(value)})")
    before, after = figures["accuracy"]
    if before is not None and after is not None:
        parts.append(f"accuracy {_percent(before)} → {_percent(after)} "
                     f"({_points(after - before)})")
    if parts and parts[0].endswith(":"):
        return parts[0] + " " + ", ".join(parts[1:])
    return ", ".join(parts)


def summary_text(folder):
    """The results table `edgeprune run` prints at the end: before and after, the ratios, the
    microcontroller verdict and where the report is."""
    run = load_run(folder)
    figures = headline(run)
    lines = [f"results of {run.name} ({folder}):"]
    if figures is None:
        return "\n".join(lines + ["  no artifact yet"])
    table = [["", figures["before"]["label"], figures["after"]["label"], "change"]]
    before, after = figures["accuracy"]
    if before is not None and after is not None:
        table.append(["accuracy", _percent(before), _percent(after), _points(after - before)])
    if figures.get("params") and None not in figures["params"]:
        params_before, params_after = figures["params"]
        table.append(["nonzero parameters", _count(params_before), _count(params_after),
                      _times(params_before / max(params_after, 1), "fewer", "more")])
    for key, label in (("gzip_bytes", "size (gzip)"), ("raw_bytes", "size (raw)")):
        size_before, size_after = figures[key]
        table.append([label, _bytes(size_before), _bytes(size_after),
                      _times(size_before / size_after, "smaller", "larger")])
    for target, (base, value, speedup, spread) in figures["latency"].items():
        change = _times(speedup, "faster", "slower")
        if spread:
            change += f" [{spread[0]:.2f}-{spread[1]:.2f}]"
        table.append([f"p50 latency ({target})", _us(base), _us(value), change])
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
              for row in table]
    lines += [f"  microcontroller ({target}): {verdict}" for target, verdict in figures["verdicts"]]
    lines += [f"report: {os.path.join(folder, path)}" for path in run.reports.values()
              if path.endswith((".html", ".md"))]
    return "\n".join(lines)


# --- tables ------------------------------------------------------------------------------------

def stage_table(rows, targets):
    """`(header, body)` of the per-artifact table, as strings; columns with no value in any row
    (e.g. latency on a target that measures none) are left out."""
    header = ["artifact", "accuracy", "params", "nonzero params", "MACs", "MACs on nonzero weights",
              "raw size", "gzip size"] + [f"p50 latency {t}" for t in targets]
    body = [[row["label"], _percent(row.get("accuracy")), _count(row.get("params")),
             _count(row.get("nonzero_params")), _count(row.get("macs")),
             _count(row.get("nonzero_macs")), _bytes(row["raw_bytes"]),
             _bytes(row["gzip_bytes"])]
            + [_us((row["latency"].get(t) or {}).get("p50_us")) for t in targets]
            for row in rows]
    return _drop_empty_columns(header, body)


def latency_table(rows, targets):
    """`(header, body)`: each model's latency spread per target, and its speed against the
    baseline; None when no target measured latency."""
    header = ["model", "target", "runs", "min", "p50", "p90", "p99", "max", "CV",
              "vs baseline [5-95%]"]
    body = []
    for row in rows:
        for target in targets:
            value = row["latency"].get(target) or {}
            if value.get("p50_us") is None:
                continue
            ratio = value.get("vs_first")
            versus = DASH
            if ratio and ratio.get("median"):
                versus = _times(1 / ratio["median"], "faster", "slower")
                if ratio.get("p5"):
                    versus += f" [{1 / ratio['p95']:.2f}-{1 / ratio['p5']:.2f}]"
            body.append([row["label"], target, _count(value.get("count")),
                         *(_us(value.get(k)) for k in ("min_us", "p50_us", "p90_us", "p99_us",
                                                       "max_us")),
                         DASH if value.get("cv") is None else f"{100 * value['cv']:.0f}%",
                         versus])
    return _drop_empty_columns(header, body) if body else None


def imp_table(rounds):
    return (["IMP round", "sparsity", "test accuracy"],
            [[str(r["round"]), f"{100 * r['sparsity']:.1f}%", _percent(r["metric"])]
             for r in rounds])


def comparison_table(runs, targets):
    """One row per run: the final artifact, accuracy before -> after, size, speed-up."""
    header = ["run", "final artifact", "accuracy before → after", "gzip size", "smaller"] + [
        f"p50 {t}" for t in targets] + [f"faster on {t}" for t in targets]
    body = []
    for run in runs:
        figures = headline(run)
        if figures is None:
            continue
        before, after = figures["accuracy"]
        gzip_before, gzip_after = figures["gzip_bytes"]
        latency = [figures["latency"].get(t) for t in targets]
        body.append([run.name, figures["after"]["label"],
                     f"{_percent(before)} → {_percent(after)}", _bytes(gzip_after),
                     _times(gzip_before / gzip_after, "smaller", "larger")
                     if figures["before"] is not figures["after"] else DASH]
                    + [_us(value[1]) if value else DASH for value in latency]
                    + [_times(value[2], "faster", "slower") if value else DASH
                       for value in latency])
    return _drop_empty_columns(header, body)


def metadata_lines(run):
    """Where and with what the run ran, and how the benchmark measured."""
    lines = []
    env = run.environment
    if env:
        versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items()
                             if version)
        samples = f"test set {_count(env.get('test_samples'))} samples"
        if env.get("train_samples"):
            samples += f" (training {_count(env['train_samples'])})"
        lines.append(f"Run {env['date']} on {env['cpu']} ({env['cpu_count']} CPUs, "
                     f"{env['system']} {env['machine']}); {versions}, Python {env['python']}; "
                     f"{samples}.")
    for target, info in run.targets.items():
        settings, runtime = info.get("settings", {}), info.get("runtime", {})
        counts = sorted({(row["latency"].get(target) or {}).get("count") for row in run.rows}
                        - {None})
        parts = []
        if counts and "num_threads" in settings:
            threads = settings["num_threads"]
            parts.append("threads: runtime default" if threads in (None, -1)
                         else f"{threads} thread{'s' if threads != 1 else ''}")
        if "use_xnnpack" in settings:
            parts.append(f"XNNPACK {'on' if settings['use_xnnpack'] else 'off'}")
        if not counts:  # micro: TFLite Micro's fit check; its settings do not apply
            lines.append(f"Benchmark {target}: a fit check against the board, no latency.")
            continue
        runs = _count(counts[0]) + (f"-{_count(counts[-1])}" if len(counts) > 1 else "")
        parts.append(f"{runs} timed runs per model")
        where = ", ".join(str(runtime[k]) for k in ("hostname", "machine") if runtime.get(k))
        if runtime.get("cpu_count"):
            where += f", {runtime['cpu_count']} CPUs"
        if runtime.get("litert_version"):
            where = f"LiteRT {runtime['litert_version']}" + (f" on {where}" if where else "")
        lines.append(f"Benchmark {target}: " + "; ".join(parts)
                     + (f" ({where})" if where else "") + ".")
    return lines


# --- plots ------------------------------------------------------------------------------------

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

def write_report(folders, out, formats=("markdown", "html"), title=None):
    """Writes `report.md` / `report.html` and the PNG plots into `out`; returns the paths."""
    runs = [load_run(folder) for folder in folders]
    targets = targets_of(runs)
    title = title or "edgeprune report: " + ", ".join(run.name for run in runs)
    charts = {"tradeoff.png": tradeoff_plot(runs, targets)}
    for index, run in enumerate(runs):
        charts[f"sparsity_{index}.png"] = sparsity_chart(run)
        charts[f"imp_{index}.png"] = imp_plot(run)
    images = {file: data for file, data in charts.items() if data}
    written = [atomic_write(os.path.join(out, file), data) for file, data in images.items()]
    if "markdown" in formats:
        written.append(atomic_write(os.path.join(out, "report.md"),
                                    _markdown(title, runs, targets, images)))
    if "html" in formats:
        written.append(atomic_write(os.path.join(out, "report.html"),
                                    _html(title, runs, targets, images)))
    return written


def _sections(runs, targets, images):
    """The report's content as `(kind, value)` blocks, rendered by `_markdown` and `_html`."""
    blocks = []
    if len(runs) > 1:
        blocks += [("h2", "Runs compared"), ("table", comparison_table(runs, targets))]
    for index, run in enumerate(runs):
        run_targets = [t for t in targets if any(t in row["latency"] for row in run.rows)]
        blocks += [("h2", run.name), ("headline", headline_text(headline(run)))]
        blocks += [("p", line) for line in metadata_lines(run)]
        blocks += [("table", stage_table(run.rows, run_targets)), ("p", SIZE_NOTE)]
        latency = latency_table(run.rows, run_targets)
        if latency:
            blocks += [("h3", "Latency"), ("table", latency)]
        blocks += [("p", text) for text in _micro_lines(run.rows)]
        if run.imp_rounds:
            blocks += [("h3", "Iterative pruning rounds (imp/)"), ("table", imp_table(run.imp_rounds))]
            if f"imp_{index}.png" in images:
                blocks.append(("image", (f"imp_{index}.png", "accuracy per IMP round")))
        blocks.append(("p", _timing_line(run.seconds)))
        if f"sparsity_{index}.png" in images:
            blocks.append(("image", (f"sparsity_{index}.png", "per-layer sparsity")))
    if "tradeoff.png" in images:
        blocks += [("h2", "Accuracy, size and latency"),
                   ("image", ("tradeoff.png", "accuracy vs size and latency"))]
    return blocks


def _markdown(title, runs, targets, images):
    lines = [f"# {title}", ""]
    for kind, value in _sections(runs, targets, images):
        if kind in ("h2", "h3"):
            lines += [("## " if kind == "h2" else "### ") + value, ""]
        elif kind == "headline":
            lines += [f"**{value}**", ""]
        elif kind == "p":
            lines += [value, ""]
        elif kind == "table":
            header, body = value
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(cells) + " |" for cells in body]
            lines.append("")
        elif kind == "image":
            lines += [f"![{value[1]}]({value[0]})", ""]
    return "\n".join(lines)


STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
         "line-height:1.4}img{max-width:100%;height:auto;display:block;margin:1em 0}"
         ".scroll{max-width:100%;overflow-x:auto}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td{white-space:nowrap}"
         "td:first-child,th:first-child{text-align:left}"
         ".headline{font-size:1.15em;font-weight:bold}p{overflow-wrap:anywhere}")


def _html(title, runs, targets, images):
    parts = ["<!doctype html><html><head><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
             f"<body><h1>{html.escape(title)}</h1>"]
    for kind, value in _sections(runs, targets, images):
        if kind in ("h2", "h3"):
            parts.append(f"<{kind}>{html.escape(value)}</{kind}>")
        elif kind == "headline":
            parts.append(f"<p class='headline'>{html.escape(value)}</p>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(value)}</p>")
        elif kind == "table":
            header, body = value
            parts.append("<div class='scroll'><table><tr>"
                         + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                                   + "</tr>" for cells in body) + "</table></div>")
        elif kind == "image":
            data = base64.b64encode(images[value[0]]).decode()
            parts.append(f'<img alt="{html.escape(value[1])}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts)


def _micro_lines(rows):
    lines = []
    for row in rows:
        for target, result in row["latency"].items():
            micro = (result or {}).get("micro")
            if micro and micro.get("verdict"):
                lines.append(f"Microcontroller check, {row['label']} on {target}: "
                             f"{micro['verdict']}")
    return lines


def _timing_line(seconds):
    return "Stage times: " + ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items())


def _drop_empty_columns(header, body):
    keep = [i for i in range(len(header)) if i == 0 or any(row[i] != DASH for row in body)]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in body]


def _percent(value):
    return DASH if value is None else f"{100 * value:.2f}%"


def _points(value):
    return f"{100 * value:+.2f} points"


def _count(value):
    return DASH if value is None else f"{value:,}"


def _bytes(value):
    if value is None:
        return DASH
    if value >= 1024 * 1024:
        return f"{value / 1024 / 1024:,.2f} MiB"
    return f"{value / 1024:,.1f} KiB"


def _us(value):
    if value is None:
        return DASH
    if value >= 10_000:
        return f"{value / 1000:,.1f} ms"
    return f"{value:,.1f} µs" if value < 100 else f"{value:,.0f} µs"


def _times(ratio, better, worse):
    """`4.10x smaller`, or `1.25x larger` for a ratio below 1; `same` within 0.5%."""
    if abs(ratio - 1) < 0.005:
        return "same"
    if ratio >= 1:
        return f"{ratio:.2f}x {better}"
    return f"{1 / ratio:.2f}x {worse}"
