"""Run reports: a Markdown file and a self-contained HTML page (plots embedded as base64 PNG).

Built from run folders' `state.json` alone, so `edgeprune report DIR [DIR ...]` redraws them any
time, and several runs (recipes) land in one comparison plot.

>>> write_report(["runs/quickstart", "runs/unstructured_80"], "runs/compare")  # doctest: +SKIP
['runs/compare/report.md', 'runs/compare/report.html', ...]
"""

import base64
import html
import io
import json
import os

import matplotlib

matplotlib.use("Agg")  # files only, no display; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

from device_bench.fileio import atomic_write  # noqa: E402

STATE_FILE = "state.json"
SIZE_NOTE = ("Sizes: Keras rows count the weights alone (no optimizer state, no file format); "
             ".tflite rows are the files. Latency is the median of device_bench's runs.")


def read_state(folder):
    """A run folder's `state.json` as a dict (`{}` when there is none)."""
    path = os.path.join(folder, STATE_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_run(folder):
    """`(name, rows, stage_seconds)` of a run folder: one row per artifact, latencies merged in."""
    state = read_state(folder)
    if not state:
        raise FileNotFoundError(f"{folder}: no {STATE_FILE}; is it an `edgeprune run` folder?")
    finished = state["finished"]
    latency = finished.get("benchmark", {}).get("latency", {})
    rows = []
    for record in finished.values():
        for row in record.get("artifacts", []):
            rows.append({**row, "latency": latency.get(row["file"], {})})
    seconds = {name: record["seconds"] for name, record in finished.items()}
    return state.get("name", os.path.basename(folder)), rows, seconds


def targets_of(runs):
    """Every benchmark target named in `runs`, in first-seen order."""
    seen = {}
    for _, rows, _ in runs:
        for row in rows:
            seen.update(dict.fromkeys(row["latency"]))
    return list(seen)


def stage_table(rows, targets):
    """Rows of strings for the per-artifact table (same content in Markdown and HTML)."""
    header = ["artifact", "accuracy", "params", "nonzero params", "MACs", "MACs on nonzero weights",
              "raw size", "gzip size"] + [f"p50 latency {t}" for t in targets]
    body = []
    for row in rows:
        body.append([row["label"], _percent(row.get("accuracy")), _count(row.get("params")),
                     _count(row.get("nonzero_params")), _count(row.get("macs")),
                     _count(row.get("nonzero_macs")), _bytes(row["raw_bytes"]),
                     _bytes(row["gzip_bytes"])]
                    + [_latency(row["latency"].get(t)) for t in targets])
    return header, body


def sparsity_chart(name, rows):
    """Bar chart of kernel sparsity per layer of the run's last Keras model, as PNG bytes."""
    keras_rows = [row for row in rows if row["kind"] == "keras" and row.get("layers")]
    if not keras_rows:
        return None
    layers = [layer for layer in keras_rows[-1]["layers"] if layer["macs"] or layer["params"]]
    figure, axes = plt.subplots(figsize=(7, 0.3 * len(layers) + 1.2))
    axes.barh([layer["name"] for layer in layers],
              [100 * layer["kernel_sparsity"] for layer in layers], color="#4c72b0")
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("kernel sparsity (%)")
    axes.set_title(f"{name}: {keras_rows[-1]['label']}")
    return _png(figure)


def tradeoff_plot(runs, targets):
    """Accuracy vs gzip size of every `.tflite`; marker area grows with latency on the first
    target. One colour per run, so several recipes compare in one picture."""
    if not any(row["kind"] == "tflite" for _, rows, _ in runs for row in rows):
        return None  # runs stopped before convert
    figure, axes = plt.subplots(figsize=(7, 4.5))
    target = targets[0] if targets else None
    for name, rows, _ in runs:
        points = [row for row in rows if row["kind"] == "tflite"]
        if not points:
            continue
        latencies = [(row["latency"].get(target) or {}).get("p50_us") for row in points]
        sizes = [40 + 6 * (value ** 0.5) if value else 40 for value in latencies]
        xs = [row["gzip_bytes"] / 1024 for row in points]
        ys = [100 * (row.get("accuracy") or 0) for row in points]
        axes.scatter(xs, ys, s=sizes, alpha=0.7, label=name)
        for x, y, row, value in zip(xs, ys, points, latencies):
            text = row["label"] + (f"\n{value:.0f} µs" if value else "")
            axes.annotate(text, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
    axes.set_xscale("log")  # sizes of compared runs span orders of magnitude
    axes.set_xlabel("gzip size (KiB, log scale)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title("accuracy vs size" + (f" (marker area: p50 latency on {target})"
                                         if target else ""))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return _png(figure)


def write_report(folders, out, formats=("markdown", "html"), title=None):
    """Writes `report.md` / `report.html` and the PNG plots into `out`; returns the paths."""
    runs = [load_run(folder) for folder in folders]
    targets = targets_of(runs)
    title = title or "edgeprune report: " + ", ".join(name for name, _, _ in runs)
    charts = {"tradeoff.png": tradeoff_plot(runs, targets)}
    charts.update((f"sparsity_{index}.png", sparsity_chart(name, rows))
                  for index, (name, rows, _) in enumerate(runs))
    images = {file: data for file, data in charts.items() if data}
    written = [atomic_write(os.path.join(out, file), data) for file, data in images.items()]
    if "markdown" in formats:
        written.append(atomic_write(os.path.join(out, "report.md"),
                                    _markdown(title, runs, targets, images)))
    if "html" in formats:
        written.append(atomic_write(os.path.join(out, "report.html"),
                                    _html(title, runs, targets, images)))
    return written


def _markdown(title, runs, targets, images):
    lines = [f"# {title}", ""]
    for index, (name, rows, seconds) in enumerate(runs):
        header, body = stage_table(rows, targets)
        lines += [f"## {name}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        lines += ["", SIZE_NOTE, "", _micro_lines(rows), _timing_line(seconds), ""]
        if f"sparsity_{index}.png" in images:
            lines += [f"![per-layer sparsity](sparsity_{index}.png)", ""]
    if "tradeoff.png" in images:
        lines += ["## Accuracy, size and latency", "", "![accuracy vs size](tradeoff.png)", ""]
    return "\n".join(line for line in lines if line is not None)


def _html(title, runs, targets, images):
    def image(file, alt):
        data = base64.b64encode(images[file]).decode()
        return f'<img alt="{alt}" src="data:image/png;base64,{data}">'

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}</style></head>"
             f"<body><h1>{html.escape(title)}</h1>"]
    for index, (name, rows, seconds) in enumerate(runs):
        header, body = stage_table(rows, targets)
        parts.append(f"<h2>{html.escape(name)}</h2><table><tr>"
                     + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
                  for cells in body]
        parts.append(f"</table><p>{html.escape(SIZE_NOTE)}</p>")
        parts += [f"<p>{html.escape(text)}</p>" for text in (_micro_lines(rows),
                                                             _timing_line(seconds)) if text]
        if f"sparsity_{index}.png" in images:
            parts.append(image(f"sparsity_{index}.png", "per-layer sparsity"))
    if "tradeoff.png" in images:
        parts += ["<h2>Accuracy, size and latency</h2>", image("tradeoff.png", "accuracy vs size")]
    parts.append("</body></html>")
    return "\n".join(parts)


def _micro_lines(rows):
    verdicts = []
    for row in rows:
        for target, result in row["latency"].items():
            micro = (result or {}).get("micro")
            if micro and micro.get("verdict"):
                verdicts.append(f"{row['label']} on {target}: {micro['verdict']}")
    return "Microcontroller check: " + "; ".join(verdicts) if verdicts else None


def _timing_line(seconds):
    return "Stage times: " + ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items())


def _png(figure):
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def _percent(value):
    return "—" if value is None else f"{100 * value:.2f}%"


def _count(value):
    return "—" if value is None else f"{value:,}"


def _bytes(value):
    return f"{value / 1024:,.1f} KiB"


def _latency(result):
    value = (result or {}).get("p50_us")
    return "—" if value is None else f"{value:,.0f} µs"
