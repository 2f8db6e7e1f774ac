"""Human-readable table and CSV rows for a BenchmarkResult.

>>> from device_bench.schema import BenchmarkResult
>>> print(format_table(BenchmarkResult("local", {}, {}, [])))
target: local
>>> size_text(3 * 1024 * 1024), size_text(2048), size_text(512)
('3.00 MiB', '2.0 KiB', '512 B')
>>> speed_text(Ratio(pairs=0, median=0.25, p5=None, p95=None))
'4.00x faster'

A fleet (several devices at once) gets one row per device and model, failed devices included:

>>> from device_bench.schema import DeviceRun, FleetResult
>>> print(format_fleet_table(FleetResult([DeviceRun("pi", "ssh://pi@pi", "failed", 0.5,
...                                                 error="pi: cannot reach the board")],
...                                      lanes=[["pi"]], wall_seconds=0.5)))
fleet: 1 device in 0.5 s
device  target       model  runs  p50  p90  p99  cv  memory  time   result
pi      ssh://pi@pi  -      -     -    -    -    -   -       0.5 s  failed: pi: cannot reach the board
"""

import csv
import io
import os

from device_bench import results, stats
from device_bench.schema import Ratio

CSV_COLUMNS = ("graph", "size_bytes", "init_us", "first_inference_us", "warmup_mean_us", "count",
               "min_us", "max_us", "mean_us", "std_us", "p50_us", "p90_us", "p99_us", "cv",
               "memory_delta_bytes", "ratio_vs_baseline", "arena_min_bytes", "board", "fits")
KIB, MIB = 1024, 1024 * 1024

# What each memory_delta_kind measures, printed under the table.
MEMORY_MEANINGS = {
    "peak_rss": "peak RSS growth while loading and warming up each model, counted after a "
                "discarded first load took the runtime's start-up (kernels a model is the first "
                "to use still add their code)",
    "rss": "RSS growth while loading and warming up each model (this OS keeps no resettable "
           "peak), counted after a discarded first load took the runtime's start-up",
    "benchmark_model_peak": "benchmark_model's peak memory, one process per model",
    "benchmark_model_overall": "benchmark_model's overall memory footprint, one process per "
                               "model",
}


def time_text(value):
    """Microseconds as 'N.N us', or 'N.NNN ms' from a millisecond up."""
    if value is None:
        return "-"
    return f"{value / 1000:.3f} ms" if value >= 1000 else f"{value:.1f} us"


def size_text(value):
    """Bytes as B, KiB or, for large files, MiB."""
    if value is None:
        return "-"
    if abs(value) >= MIB:
        return f"{value / MIB:.2f} MiB"
    return f"{value / KIB:.1f} KiB" if abs(value) >= KIB else f"{value} B"


def speed_text(ratio):
    """A latency ratio (model / first model) as 'N.NNx faster' or 'slower', with the 5-95% range
    of per-round ratios in the same terms when the runs were interleaved."""
    faster = ratio.median < 1
    factor = 1 / ratio.median if faster else ratio.median
    text = f"{factor:.2f}x {'faster' if faster else 'slower'}"
    if ratio.p5 is None:
        return text
    low, high = (1 / ratio.p95, 1 / ratio.p5) if faster else (ratio.p5, ratio.p95)
    return f"{text} [{low:.2f}-{high:.2f}]"


def settings_text(settings):
    """The run settings that shape the figures, in one line ('' when the target ignores them)."""
    if not settings:
        return ""
    threads = settings["num_threads"]
    return (f"settings: threads {'runtime default' if threads < 1 else threads}, XNNPACK "
            f"{'on' if settings['use_xnnpack'] else 'off'}, timed: "
            f"{_at_least(settings['num_runs'], settings['min_secs'])} (stop at "
            f"{settings['max_secs']:g} s), warmup: "
            f"{_at_least(settings['warmup_runs'], settings['warmup_min_secs'])}")


def _at_least(runs, secs):
    return f"at least {runs} run{'s' if runs != 1 else ''}" + (f" and {secs:g} s" if secs else "")


def _comparisons(result):
    """{model index: Ratio}; comparisons follow the models after the first, in order."""
    if len(result.comparisons) != len(result.models) - 1:
        return {}
    return {i: comparison.ratio for i, comparison in enumerate(result.comparisons, 1)}


def format_table(result):
    lines = [f"target: {result.target}"]
    ratios = _comparisons(result)
    timed = [(i, m) for i, m in enumerate(result.models) if m.latency is not None]
    if timed:
        lines += [line for line in [settings_text(result.settings)] if line]
        rows = [("model", "size", "runs", "init", "first", "min", "p50", "p90", "p99", "max",
                 "mean", "cv", "memory", "vs first")]
        for i, m in timed:
            lat = m.latency
            rows.append((os.path.basename(m.graph), size_text(m.size_bytes), lat.count,
                         time_text(m.init_us), time_text(m.first_inference_us),
                         *(time_text(value) for value in (lat.min_us, lat.p50_us, lat.p90_us,
                                                          lat.p99_us, lat.max_us, lat.mean_us)),
                         "-" if lat.cv is None else f"{lat.cv:.1%}",
                         size_text(m.memory_delta_bytes),
                         speed_text(ratios[i]) if i in ratios else "-"))
        lines += _align(rows)
        lines += _footnotes(result, ratios)
    for m in result.models:
        if m.micro is not None:
            lines.append(f"{os.path.basename(m.graph)}: {m.micro.verdict}")
            lines += [f"  note: {note}" for note in m.micro.notes if note not in m.micro.verdict]
            lines += _arena_line(m.micro)
    lines += _warnings(result)
    return "\n".join(lines)


def _footnotes(result, ratios):
    kinds = dict.fromkeys(m.memory_delta_kind for m in result.models if m.memory_delta_kind)
    notes = [f"memory: {MEMORY_MEANINGS.get(kind, kind)}" for kind in kinds]
    if any(r.p5 is not None for r in ratios.values()):
        notes.append("vs first: how much faster or slower than the first model, the median over "
                     "runs taken in the same rounds [5%-95% range]; a range spanning 1.00 is no "
                     "clear difference")
    elif ratios:
        notes.append("vs first: ratio of typical latencies, the models run one after another")
    return notes


def _arena_line(micro):
    if micro.arena_min_bytes is None:
        return []
    return [f"  kTensorArenaSize: {micro.arena_min_bytes} bytes, the smallest arena that ran here "
            "(optimized kernels such as CMSIS-NN may need scratch space on top)"]


def _warnings(result):
    """Warnings, with the advice for noisy latencies given once for all the models it concerns."""
    noisy = [m for m in result.models if m.latency is not None and stats.is_noisy(m.latency)]
    repeated = {results.noise_warning(m) for m in noisy}
    lines = [f"warning: {w}" for w in result.warnings if w not in repeated]
    if noisy:
        varied = ", ".join(f"{os.path.basename(m.graph)} {m.latency.cv:.0%}" for m in noisy)
        lines.append(f"warning: noisy latency (coefficient of variation above "
                     f"{stats.NOISY_CV:.0%}): {varied}; {results.NOISE_ADVICE}")
    return lines


def _align(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]


def format_fleet_table(fleet):
    """The fleet's table: a row per device and model, then how the devices ran and warnings."""
    lanes = [lane for lane in fleet.lanes if len(lane) > 1]
    count = len(fleet.devices)
    lines = [f"fleet: {count} device{'s' if count != 1 else ''} in {fleet.wall_seconds:.1f} s"
             + "".join(f"; one after another (this computer's CPUs): {', '.join(lane)}"
                       for lane in lanes)]
    done = [device.result for device in fleet.devices if device.result is not None]
    settings = {settings_text(result.settings) for result in done} - {""}
    if len(settings) == 1:
        lines.append(settings.pop())
    elif settings:
        lines.append("settings: they differ between devices (see each device in --output_json)")
    compared = any(result.comparisons for result in done)
    rows = [("device", "target", "model", "runs", "p50", "p90", "p99", "cv", "memory")
            + (("vs first",) if compared else ()) + ("time", "result")]
    for device in fleet.devices:
        rows += _device_rows(device, compared)
    if all(device.name == device.target for device in fleet.devices):
        rows = [row[:1] + row[2:] for row in rows]  # the names are the targets: said once
    lines += _align(rows)
    # Python warnings of the workers (fleet.warnings) reach stderr as warnings; these are the
    # results' own (noisy latency).
    for device in fleet.devices:
        if device.result is not None:
            lines += [f"{device.name}: {line}" for line in _warnings(device.result)]
    return "\n".join(lines)


def _device_rows(device, compared):
    time = f"{device.seconds:.1f} s"
    if device.result is None:
        return [(device.name, device.target, *["-"] * (7 + compared), time,
                 f"{device.status}: {device.error}")]
    ratios = _comparisons(device.result)
    rows = []
    for i, m in enumerate(device.result.models):
        lat = m.latency
        timed = (lat.count, *(time_text(v) for v in (lat.p50_us, lat.p90_us, lat.p99_us)),
                 "-" if lat.cv is None else f"{lat.cv:.1%}") if lat else ("-",) * 5
        ratio = ((speed_text(ratios[i]) if i in ratios else "-",) if compared else ())
        rows.append((device.name, device.target, os.path.basename(m.graph), *timed,
                     size_text(m.memory_delta_bytes), *ratio, time,
                     m.micro.verdict if m.micro is not None else "ok"))
    return rows


FLEET_CSV_COLUMNS = ("device", "target", "status", "error", "seconds") + CSV_COLUMNS


def fleet_to_csv(fleet):
    """One row per device and model (CSV_COLUMNS after device, target, status, error, seconds);
    a failed device has one row, with its error."""
    out = io.StringIO()
    writer = csv.DictWriter(out, FLEET_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for device in fleet.devices:
        head = {"device": device.name, "target": device.target, "status": device.status,
                "error": device.error, "seconds": f"{device.seconds:.3f}"}
        if device.result is None:
            writer.writerow(head)
            continue
        for row in csv.DictReader(io.StringIO(to_csv(device.result))):
            writer.writerow({**head, **row})
    return out.getvalue()


def to_csv(result):
    """One row per model, CSV_COLUMNS; empty cells where a target has no figure."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    ratios = _comparisons(result)
    for i, m in enumerate(result.models):
        row = {"graph": m.graph, "size_bytes": m.size_bytes, "init_us": m.init_us,
               "first_inference_us": m.first_inference_us, "warmup_mean_us": m.warmup_mean_us,
               "memory_delta_bytes": m.memory_delta_bytes}
        if m.latency is not None:
            row.update({k: v for k, v in vars(m.latency).items() if k in CSV_COLUMNS})
        if i in ratios:
            row["ratio_vs_baseline"] = ratios[i].median
        if m.micro is not None:
            row.update(arena_min_bytes=m.micro.arena_min_bytes, board=m.micro.board,
                       fits=m.micro.fits)
        writer.writerow(row)
    return out.getvalue()
