"""Run reports: a Markdown file and a self-contained HTML page (plots embedded as base64 PNG),
assembled from the words and tables of `report_text` and the plots of `report_plots`.

Built from run folders' `state.json` (and `imp/imp.json` after iterative pruning) alone, so
`edgeprune report DIR [DIR ...]` redraws them any time, and several runs (recipes) are compared
in one table and one plot. Each run's section opens with a headline (how much smaller, how much
faster, the accuracy before and after) and where and with what it ran.

>>> write_report(["runs/quickstart", "runs/unstructured_80"], "runs/compare")  # doctest: +SKIP
['runs/compare/tradeoff.png', ..., 'runs/compare/report.md', 'runs/compare/report.html']
"""

import base64
import html
import os

from device_bench.fileio import atomic_write
from edgeprune.recipe.report_plots import (imp_plot, latency_budget_plot, sparsity_chart,
                                           tradeoff_plot)
from edgeprune.recipe.report_text import (SIZE_NOTE, comparison_table, headline, headline_text,
                                          imp_table, latency_budget_table, latency_table,
                                          metadata_lines,
                                          micro_lines, stage_table, timing_line)
from edgeprune.recipe.run_records import load_run, targets_of


def write_report(folders, out, formats=("markdown", "html"), title=None):
    """Writes `report.md` / `report.html` and the PNG plots into `out`; returns the paths."""
    runs = [load_run(folder) for folder in folders]
    targets = targets_of(runs)
    title = title or "edgeprune report: " + ", ".join(run.name for run in runs)
    charts = {"tradeoff.png": tradeoff_plot(runs, targets)}
    for index, run in enumerate(runs):
        charts[f"sparsity_{index}.png"] = sparsity_chart(run)
        charts[f"imp_{index}.png"] = imp_plot(run)
        charts[f"latency_budget_{index}.png"] = latency_budget_plot(run)
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
        blocks += [("p", text) for text in micro_lines(run.rows)]
        budget = latency_budget_table(run)
        if budget:
            blocks += [("h3", "Latency budget: predicted and measured"), ("table", budget)]
            if f"latency_budget_{index}.png" in images:
                blocks.append(("image", (f"latency_budget_{index}.png",
                                         "predicted and measured latency")))
        if run.imp_rounds:
            blocks += [("h3", "Iterative pruning rounds (imp/)"), ("table", imp_table(run.imp_rounds))]
            if f"imp_{index}.png" in images:
                blocks.append(("image", (f"imp_{index}.png", "accuracy per IMP round")))
        blocks.append(("p", timing_line(run.seconds)))
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
