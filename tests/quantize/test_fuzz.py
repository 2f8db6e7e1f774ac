"""Fuzz (issue 14): edgeprune's readers of a `.tflite` (size_report, run_tflite, validate_tflite,
export_micro, `edgeprune inspect`) on damaged files: a clear error naming the file, never a
signal, a traceback, a hang, or a result (outputs, firmware) from a file LiteRT refuses.

The mutations and the driver are device_bench's (tests/fuzz_tflite.py, with its entry points for
`device-bench`); each entry point runs in a forked child. Seeded (SEED): a failure reproduces
from the model, the seed and the mutation's name. Fewer files than device_bench's fuzz test,
because three of these entry points start LiteRT in a child process of their own for every file
that verifies: 135 files, about a minute on two cores. (With LiteRT run in the caller's process
instead, this seed finds 26 failures: tracebacks, errors that do not name the file, firmware from
models LiteRT refuses.)
"""

import json
import os
import subprocess
import sys

from tests.device_bench.conftest import models  # noqa: F401 -- the shared tiny .tflite models

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 1414
# Quantized with int8 I/O; float with sparse storage (DENSIFY); float with dynamic dimensions.
MODELS = ("int8", "sparse", "dynamic")
ENTRY_POINTS = ["size_report", "run_tflite", "validate_tflite", "export_micro",
                "edgeprune inspect"]


def test_fuzz_edgeprune_readers_never_crash_hang_or_certify(models, tmp_path):  # noqa: F811
    request = {"models": {name: models[name] for name in MODELS}, "seed": SEED,
               "folder": str(tmp_path), "entry_points": ENTRY_POINTS,
               "counts": {"flips": 10, "words": 14, "zeroed": 5, "truncations": 3}}
    done = subprocess.run([sys.executable, "-m", "tests.fuzz_tflite"], input=json.dumps(request),
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["cases"] >= 130 and report["rejected_by_litert"] >= 80, report
    assert not report["failures"], f"seed {SEED}:\n" + "\n".join(
        f"{f['model']} {f['mutation']!r} via {f['entry_point']}: {f['problem']} "
        f"(LiteRT accepts: {f['litert_accepts']})\n{f['output']}" for f in report["failures"])
