"""Fuzz: damaged .tflite files get a clear error naming the file; never a signal, a traceback, a
hang, or a verdict about a file LiteRT refuses.

Seeded (SEED) so that a failure reproduces; about 300 files, about a minute on two cores. The
mutations and the driver are in tests/fuzz_tflite.py, which other suites can reuse.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 14
MODELS = ("int8", "float", "sparse", "dynamic")  # quantized, float, sparse storage, dynamic shape
ENTRY_POINTS = ["device-bench local", "device-bench micro"]


def test_fuzz_damaged_models_never_crash_hang_or_get_a_verdict(models, tmp_path):
    request = {"models": {name: models[name] for name in MODELS}, "seed": SEED,
               "folder": str(tmp_path), "entry_points": ENTRY_POINTS,
               "counts": {"flips": 16, "words": 26, "zeroed": 8, "truncations": 5}}
    done = subprocess.run([sys.executable, "-m", "tests.fuzz_tflite"], input=json.dumps(request),
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["cases"] >= 250 and report["rejected_by_litert"] >= 150, report
    assert not report["failures"], f"seed {SEED}:\n" + "\n".join(
        f"{f['model']} {f['mutation']!r} via {f['entry_point']}: {f['problem']} "
        f"(LiteRT accepts: {f['litert_accepts']})\n{f['output']}" for f in report["failures"])
