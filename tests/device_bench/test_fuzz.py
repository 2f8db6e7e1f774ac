"""Fuzz: damaged .tflite files get a clear error naming the file; never a signal, a traceback, a
hang, or a verdict about a file LiteRT refuses.

Seeded (SEED) so that a failure reproduces; about 300 files, about a minute on two cores. The
mutations and the driver are in tests/fuzz_tflite.py, which other suites can reuse.
"""

from tests.fuzz_tflite import fuzz_in_child

SEED = 14
MODELS = ("int8", "float", "sparse", "dynamic")  # quantized, float, sparse storage, dynamic shape
ENTRY_POINTS = ["device-bench local", "device-bench micro"]


def test_fuzz_damaged_models_never_crash_hang_or_get_a_verdict(models, tmp_path):
    counts = {"flips": 16, "words": 26, "zeroed": 8, "truncations": 5}
    report, failures = fuzz_in_child({name: models[name] for name in MODELS}, tmp_path,
                                     ENTRY_POINTS, SEED, counts, timeout=900)
    assert report["cases"] >= 250 and report["rejected_by_litert"] >= 150, report
    assert not failures, failures
