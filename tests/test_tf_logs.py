"""TensorFlow's C++ log lines are kept off the terminal (`edgeprune.tf_logs`), errors are not."""

import os
import subprocess
import sys
import textwrap

from edgeprune import tf_logs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796134473.250324   30760 port.cc:153] oneDNN custom operations are on.",
    "W0000 00:00:1796134491.151856   30760 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.",
    "fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32",
    "E0000 00:00:1796134480.524098   30760 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
]
KEPT = [
    "E0000 00:00:1796134480.524098   30760 op_kernel.cc:1857] OP_REQUIRES failed: out of memory",
    "F0000 00:00:1796134480.524098   30760 logging.cc:12] Check failed: x == y",
    "/work/m.py:3: UserWarning: something the user should see",
    "Traceback (most recent call last):",
]


def test_routine_lines_are_noise_and_errors_are_not():
    assert [line for line in NOISE if not tf_logs.is_noise(line)] == []
    assert [line for line in KEPT if tf_logs.is_noise(line)] == []
    text = "".join(line + "\n" for line in NOISE + KEPT)
    assert tf_logs.filter_noise(text) == "".join(line + "\n" for line in KEPT)


def run_python(code, **env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TF_CPP_MIN_LOG_LEVEL", tf_logs.VERBOSE_ENV)}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                          env=environment, capture_output=True, text=True, timeout=300)


WRITE_TO_FD_2 = """
    import os, sys
    from edgeprune import tf_logs
    lines = {lines!r}
    try:
        with tf_logs.quiet():
            os.write(2, "".join(line + "\\n" for line in lines).encode())
            print("python stderr", file=sys.stderr)
            {raise_}
    except RuntimeError:
        print("raised", file=sys.stderr)
"""


def test_quiet_drops_the_noise_written_to_fd_2_and_keeps_the_rest():
    result = run_python(WRITE_TO_FD_2.format(lines=NOISE + KEPT, raise_="pass"))
    assert result.stderr.splitlines() == KEPT + ["python stderr"]


def test_if_the_block_raises_everything_captured_is_written_back():
    result = run_python(WRITE_TO_FD_2.format(lines=NOISE + KEPT,
                                             raise_="raise RuntimeError('conversion failed')"))
    assert result.stderr.splitlines() == NOISE + KEPT + ["python stderr", "raised"]


def test_verbose_shows_everything():
    result = run_python(WRITE_TO_FD_2.format(lines=NOISE, raise_="pass"),
                        **{tf_logs.VERBOSE_ENV: "1"})
    assert result.stderr.splitlines() == NOISE + ["python stderr"]


def test_importing_keras_after_edgeprune_and_converting_print_no_tensorflow_log_line():
    """A README snippet: `import edgeprune` first, then keras; build, convert, run in LiteRT."""
    result = run_python("""
        import edgeprune as ep
        import keras, numpy as np
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        xs = np.random.rand(16, 4).astype("float32")
        model(xs)
        tflite = ep.export_tflite(model, quantize="int8", representative_data=xs)
        print(len(tflite) > 0)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert result.stderr == ""
