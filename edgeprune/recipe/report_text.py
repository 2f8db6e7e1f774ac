"""What a report says in words and tables: the headline (before -> after), the end-of-run
summary, the stage, latency, IMP and comparison tables, the run's metadata, and the number
formats they share."""

import os

from edgeprune.recipe.run_records import load_run

SIZE_NOTE = ("Sizes: Keras rows count the weights alone (no optimizer state, no file format); "
             ".tflite rows are the files. Latency is the median of device_bench's runs.")
DASH = "—"


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


def latency_budget_rows(run):
    """`[(label, predicted ms, measured ms or None)]` of a latency-budgeted run: the dense
    baseline and the final model, measured by the benchmark stage on the budget's target (None
    when it did not run there), and the plan as the allocate stage timed it; [] for other
    runs."""
    budget = run.latency_budget
    if not budget:
        return []
    measured = {row["file"]: (row["latency"].get(budget["target"]) or {}).get("p50_us")
                for row in run.rows if row.get("file")}
    if budget["precision"] != "float32":  # baseline.tflite is float32: not what was planned
        measured.pop("baseline.tflite", None)
    rows = []
    for label, file, predicted in (("dense baseline", "baseline.tflite",
                                    budget["dense_measured_ms"]),
                                   ("final model", "model.tflite", budget["predicted_ms"])):
        value = measured.get(file)
        rows.append((label, predicted, None if value is None else value / 1e3))
    if budget.get("planned_measured_ms") is not None:
        rows.append(("plan, timed when planning", budget["predicted_ms"],
                     budget["planned_measured_ms"]))
    return rows


def latency_budget_table(run):
    """`(header, body)`: predicted against measured latency of a latency-budgeted run, or None.
    The dense baseline's prediction is its measurement when planning; the benchmark stage's
    baseline.tflite is float32, so it is shown as measured for float32 plans only."""
    rows = latency_budget_rows(run)
    if not rows:
        return None
    budget = run.latency_budget
    header = ["model", "budget (ms)", "predicted (ms)", "measured (ms)", "measured / predicted"]
    body = [[label, f"{budget['budget_ms']:.3f}" if label != "dense baseline" else DASH,
             f"{predicted:.3f}", DASH if measured is None else f"{measured:.3f}",
             DASH if measured is None else f"{measured / predicted:.2f}"]
            for label, predicted, measured in rows]
    return header, body


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


def micro_lines(rows):
    lines = []
    for row in rows:
        for target, result in row["latency"].items():
            micro = (result or {}).get("micro")
            if micro and micro.get("verdict"):
                lines.append(f"Microcontroller check, {row['label']} on {target}: "
                             f"{micro['verdict']}")
    return lines


def timing_line(seconds):
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
