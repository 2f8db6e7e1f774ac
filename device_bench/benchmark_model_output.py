"""Parser for the text the official LiteRT `benchmark_model` binary prints, in every known version.

It reads, wherever they appear on a line (plain, "INFO: " or logcat "I tflite  : " prefixes):

- `Inference timings in us: Init: I, First inference: F, Warmup (avg): W, Inference (avg): A`
- the older `Average inference timings in us: Warmup: W, Init: I, Inference: A` (or `no stats: A`)
- statistics `count=N first=F curr=C min=M max=X avg=A std=S [p5=.. median=.. p95=..]`; the line
  after each `Running benchmark for ...` header (warmup first, then the timed runs); op-profiling
  tables' `Timings (microseconds): count=...` lines are not run statistics and are skipped
- `Memory footprint delta from the start of the tool (MB): init=X overall=Y` (older: `Peak memory
  footprint (MB): init=X overall=Y`) and `Overall peak memory footprint (MB) via periodic
  monitoring: P`

>>> parse("count=50 first=9 curr=8 min=7 max=12 avg=8.5 std=1").latency.mean_us
8.5
"""

import re
from dataclasses import dataclass

from device_bench.errors import BenchError
from device_bench.schema import LatencyStats

_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_SUMMARY = re.compile(rf"Inference timings in us: Init: ({_NUMBER}), First inference: ({_NUMBER}), "
                      rf"Warmup \(avg\): ({_NUMBER}), Inference \(avg\): ({_NUMBER})")
_OLD_SUMMARY = re.compile(rf"Average inference timings in us: Warmup: ({_NUMBER}), "
                          rf"Init: ({_NUMBER}), (?:Inference|no stats): ({_NUMBER})")
_STATS = re.compile(rf"(?<![\w(])count=(\d+)((?: \w+={_NUMBER})*)")
_NOT_RUN_STATS = re.compile(r"(Timings \(microseconds\)|Memory \(bytes\)):\s*count=")
_HEADER = re.compile(r"Running benchmark for")
_MEMORY = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint)"
                     rf" \(MB\): init=({_NUMBER}) overall=({_NUMBER})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUMBER})")
MIB = 1 << 20


@dataclass
class BenchmarkModelRun:
    latency: LatencyStats | None
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_mean_us: float | None = None
    warmup_count: int | None = None
    memory_overall_bytes: int | None = None
    peak_memory_bytes: int | None = None


def _stats_fields(match):
    fields = {"count": int(match.group(1))}
    for pair in match.group(2).split():
        key, _, value = pair.partition("=")
        fields[key] = float(value)
    return fields


def _run_statistics(lines):
    """Statistics dicts of the warmup and timed phases, in order."""
    after_header, loose, waiting = [], [], False
    for line in lines:
        if _HEADER.search(line):
            waiting = True
            continue
        match = _STATS.search(line)
        if not match or _NOT_RUN_STATS.search(line):
            continue
        loose.append(_stats_fields(match))
        if waiting:
            after_header.append(loose[-1])
            waiting = False
    return after_header or loose


def _latency(fields):
    mean, std = fields.get("avg", fields.get("curr")), fields.get("std")
    return LatencyStats(count=fields["count"], min_us=fields.get("min"), max_us=fields.get("max"),
                        mean_us=mean, std_us=std, p50_us=fields.get("median"), p90_us=None,
                        p99_us=None, cv=std / mean if std is not None and mean else None)


def parse(text):
    """BenchmarkModelRun from benchmark_model's output; BenchError if it holds no timings."""
    lines = text.splitlines()
    phases = _run_statistics(lines)
    run = BenchmarkModelRun(latency=_latency(phases[-1]) if phases else None)
    if len(phases) >= 2:
        warmup = phases[0]
        run.warmup_count = warmup["count"]
        run.warmup_mean_us = warmup.get("avg", warmup.get("curr"))
        run.first_inference_us = warmup.get("first", warmup.get("curr"))
    summary_mean = None
    for line in lines:
        if match := _SUMMARY.search(line):
            run.init_us, run.first_inference_us, run.warmup_mean_us, summary_mean = (
                float(v) for v in match.groups())
        elif match := _OLD_SUMMARY.search(line):
            run.warmup_mean_us, run.init_us, summary_mean = (float(v) for v in match.groups())
        elif match := _MEMORY.search(line):
            run.memory_overall_bytes = round(float(match.group(2)) * MIB)
        elif match := _PEAK.search(line):
            run.peak_memory_bytes = round(float(match.group(1)) * MIB)
    if run.latency is None and summary_mean is not None:  # a log holding only the summary line
        run.latency = LatencyStats(count=0, min_us=None, max_us=None, mean_us=summary_mean,
                                   std_us=None, p50_us=None, p90_us=None, p99_us=None, cv=None)
    if run.latency is None:
        tail = "\n".join(lines[-8:]) or "(no output)"
        raise BenchError(f"benchmark_model printed no timings; its last lines:\n{tail}")
    return run
