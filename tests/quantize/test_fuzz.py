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


from tests.device_bench.conftest import models  # noqa: F401 -- the shared tiny .tflite models
from tests.fuzz_tflite import fuzz_in_child

SEED = 1414
# Quantized with int8 I/O; float with sparse storage (DENSIFY); float with dynamic dimensions.
MODELS = ("int8", "sparse", "dynamic")
ENTRY_POINTS = ["size_report", "run_tflite", "validate_tflite", "export_micro",
                "edgeprune inspect"]


def test_fuzz_edgeprune_readers_never_crash_hang_or_certify(models, tmp_path):  # noqa: F811
    counts = {"flips": 10, "words": 14, "zeroed": 5, "truncations": 3}
    report, failures = fuzz_in_child({name: models[name] for name in MODELS}, tmp_path,
                                     ENTRY_POINTS, SEED, counts, timeout=600)
    assert report["cases"] >= 130 and report["rejected_by_litert"] >= 80, report
    assert not failures, failures
