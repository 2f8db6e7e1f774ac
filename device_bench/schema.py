"""The versioned result schema shared by the CLI's JSON/CSV output and the Python API.

A `BenchmarkResult` holds one `ModelResult` per graph, comparisons against the first graph, and for
the micro target a `MicroReport` per graph. `to_dict()` gives plain JSON-able data whose layout is
pinned by SCHEMA_VERSION; `BenchmarkResult.from_dict()` reads it back.

>>> result = BenchmarkResult(target="local", settings={}, runtime={}, models=[])
>>> result.to_dict()["schema_version"]
1
>>> rounded({"p50_us": 734.2618920001, "cv": 0.0123456789})
{'p50_us': 734.262, 'cv': 0.0123457}

Times are microseconds, sizes bytes. Fields a target cannot measure are None (for example the
percentiles from an old benchmark_model that prints only the mean).
"""

import dataclasses
import json
import math
from dataclasses import dataclass, field

SCHEMA_VERSION = 1
# Timing noise is far above a millionth, so more digits in the JSON would only be clutter.
FLOAT_DIGITS = 6


@dataclass
class LatencyStats:
    count: int
    min_us: float | None
    max_us: float | None
    mean_us: float
    std_us: float | None
    p50_us: float | None
    p90_us: float | None
    p99_us: float | None
    cv: float | None  # coefficient of variation, std / mean


@dataclass
class Ratio:
    """Latency of a graph divided by the baseline's; < 1 means faster than the baseline."""
    pairs: int          # timed pairs the ratio comes from (0: ratio of means, not interleaved)
    median: float
    p5: float | None
    p95: float | None


@dataclass
class Comparison:
    baseline: str
    graph: str
    ratio: Ratio


@dataclass
class MemoryVerdict:
    """Needed vs available bytes of one memory (flash or RAM) of a board."""
    needed_bytes: int
    available_bytes: int
    fits: bool
    margin_bytes: int   # available - needed: negative when it does not fit


@dataclass
class MicroReport:
    ops: list[str]
    arena_used_bytes: int | None          # print_allocations' total at a generous arena
    arena_min_bytes: int | None           # smallest arena the interpreter ran with
    board: str | None = None
    flash: MemoryVerdict | None = None
    ram: MemoryVerdict | None = None
    fits: bool | None = None
    verdict: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class ModelResult:
    graph: str
    size_bytes: int
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_mean_us: float | None = None
    warmup_count: int | None = None
    latency: LatencyStats | None = None
    # Peak RSS growth while loading and warming up, after the runtime's start-up (see runner.py).
    memory_delta_bytes: int | None = None
    memory_delta_kind: str | None = None    # "peak_rss", "rss" or "benchmark_model_overall"
    inputs: list[dict] = field(default_factory=list)
    micro: MicroReport | None = None
    warnings: list[str] = field(default_factory=list)


class _JsonResult:
    """to_dict / to_json of a result dataclass."""

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        """to_dict() as indented JSON text, floats rounded to FLOAT_DIGITS significant digits."""
        return json.dumps(rounded(self.to_dict()), indent=2) + "\n"


@dataclass
class BenchmarkResult(_JsonResult):
    target: str
    settings: dict
    runtime: dict
    models: list[ModelResult]
    comparisons: list[Comparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data):
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"result schema version {data.get('schema_version')} is not "
                             f"{SCHEMA_VERSION}; read it with the device_bench that wrote it")
        return cls(
            target=data["target"], settings=data["settings"], runtime=data["runtime"],
            models=[_model_from_dict(m) for m in data["models"]],
            comparisons=[Comparison(c["baseline"], c["graph"], Ratio(**c["ratio"]))
                         for c in data["comparisons"]],
            warnings=list(data["warnings"]))


@dataclass
class DeviceRun:
    """One device of a fleet: its BenchmarkResult, or why it has none.

    `status` is "ok", "failed" (`error` says why: connection refused or dropped, a model the
    device cannot run, ...), "timeout" (past the fleet's device_timeout) or "interrupted".
    `seconds` is the wall time the device took, connecting and copying included.
    """
    name: str
    target: str
    status: str
    seconds: float
    result: BenchmarkResult | None = None
    error: str | None = None


@dataclass
class FleetResult(_JsonResult):
    """Several devices benchmarked at once: one DeviceRun per device, in the order given.

    `lanes` lists the devices that ran one after another (devices computing on this computer's
    CPUs share a lane); the lanes ran in parallel, in `wall_seconds` all together.
    """
    devices: list[DeviceRun]
    lanes: list[list[str]]
    wall_seconds: float
    warnings: list[str] = field(default_factory=list)
    kind: str = "fleet"
    schema_version: int = SCHEMA_VERSION

    @property
    def failed(self):
        return [device for device in self.devices if device.status != "ok"]

    @classmethod
    def from_dict(cls, data):
        if data.get("schema_version") != SCHEMA_VERSION or data.get("kind") != "fleet":
            raise ValueError(f"not a fleet result of schema version {SCHEMA_VERSION}; read it "
                             "with the device_bench that wrote it")
        devices = [DeviceRun(**{**d, "result": d["result"] and BenchmarkResult.from_dict(
            d["result"])}) for d in data["devices"]]
        return cls(devices=devices, lanes=data["lanes"], wall_seconds=data["wall_seconds"],
                   warnings=list(data["warnings"]))


def _model_from_dict(data):
    data = dict(data)
    if data["latency"] is not None:
        data["latency"] = LatencyStats(**data["latency"])
    if data["micro"] is not None:
        micro = dict(data["micro"])
        for key in ("flash", "ram"):
            if micro[key] is not None:
                micro[key] = MemoryVerdict(**micro[key])
        data["micro"] = MicroReport(**micro)
    return ModelResult(**data)


def rounded(data):
    """`data` (nested dicts and lists) with every float rounded to FLOAT_DIGITS significant digits."""
    if isinstance(data, dict):
        return {key: rounded(value) for key, value in data.items()}
    if isinstance(data, list):
        return [rounded(value) for value in data]
    if isinstance(data, float) and math.isfinite(data):
        return float(f"{data:.{FLOAT_DIGITS}g}")
    return data
