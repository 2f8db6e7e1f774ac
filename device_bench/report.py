"""Human-readable table and CSV rows for a BenchmarkResult.

>>> from device_bench.schema import BenchmarkResult
>>> print(format_table(BenchmarkResult("local", {}, {}, [])))
target: local
"""

import csv
import io
import os

CSV_COLUMNS = ("graph", "size_bytes", "init_us", "first_inference_us", "warmup_mean_us", "count",
               "min_us", "max_us", "mean_us", "std_us", "p50_us", "p90_us", "p99_us", "cv",
               "memory_delta_bytes", "ratio_vs_baseline", "arena_min_bytes", "board", "fits")


def _us(value):
    return "-" if value is None else f"{value / 1000:.3f} ms" if value >= 1000 else f"{value:.1f} us"


def _kib(value):
    return "-" if value is None else f"{value / 1024:.1f} KiB"


def _ratios(result):
    return {c.graph: c.ratio for c in result.comparisons}


def format_table(result):
    lines = [f"target: {result.target}"]
    ratios = _ratios(result)
    latency_rows = [m for m in result.models if m.latency is not None]
    if latency_rows:
        header = ("model", "size", "init", "first", "p50", "p90", "p99", "mean", "std", "cv",
                  "memory", "vs first")
        rows = [header]
        for m in latency_rows:
            lat, ratio = m.latency, ratios.get(m.graph)
            rows.append((os.path.basename(m.graph), _kib(m.size_bytes), _us(m.init_us),
                         _us(m.first_inference_us), _us(lat.p50_us), _us(lat.p90_us),
                         _us(lat.p99_us), _us(lat.mean_us), _us(lat.std_us),
                         "-" if lat.cv is None else f"{lat.cv:.1%}", _kib(m.memory_delta_bytes),
                         "-" if ratio is None else _ratio_text(ratio)))
        lines += _align(rows)
    for m in result.models:
        if m.micro is not None:
            lines.append(f"{os.path.basename(m.graph)}: {m.micro.verdict}")
            lines += [f"  note: {note}" for note in m.micro.notes if note not in m.micro.verdict]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def _ratio_text(ratio):
    if ratio.p5 is None:
        return f"{ratio.median:.3f}x"
    return f"{ratio.median:.3f}x [{ratio.p5:.2f}-{ratio.p95:.2f}]"


def _align(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]


def to_csv(result):
    """One row per model, CSV_COLUMNS; empty cells where a target has no figure."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    ratios = _ratios(result)
    for m in result.models:
        row = {"graph": m.graph, "size_bytes": m.size_bytes, "init_us": m.init_us,
               "first_inference_us": m.first_inference_us, "warmup_mean_us": m.warmup_mean_us,
               "memory_delta_bytes": m.memory_delta_bytes}
        if m.latency is not None:
            row.update({k: v for k, v in vars(m.latency).items() if k in CSV_COLUMNS})
        if m.graph in ratios:
            row["ratio_vs_baseline"] = ratios[m.graph].median
        if m.micro is not None:
            row.update(arena_min_bytes=m.micro.arena_min_bytes, board=m.micro.board,
                       fits=m.micro.fits)
        writer.writerow(row)
    return out.getvalue()
