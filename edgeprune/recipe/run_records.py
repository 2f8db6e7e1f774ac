"""Reading run folders: a run's `state.json` (and `imp/imp.json` after iterative pruning) as the
rows, timings, environment and benchmark targets that reports and summaries show."""

import dataclasses
import json
import os

STATE_FILE = "state.json"


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
    latency_budget: dict = None  # a latency budget's plan: target, budget_ms, predicted_ms, ...


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
               finished.get("report", {}).get("outputs", {}),
               finished.get("allocate", {}).get("latency_budget"))


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
