import os
import re
import subprocess

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime

import edgeprune as ep
from device_bench.flatbuffer import operator_names
from edgeprune.quantize.micro import _resolver_method
from tests.quantize.models import kernel_sparsities


def test_float_export_validates_exactly(trained_cnn, digits):
    _, (x_test, y_test) = digits
    report = ep.validate_tflite(ep.export_tflite(trained_cnn), trained_cnn, x_test, y_test)
    assert report.max_abs_diff < 1e-3 and report.mean_abs_diff < 1e-4
    assert report.top1_agreement == 1.0
    assert report.tflite_accuracy == report.keras_accuracy
    assert "tflite_accuracy=" in repr(report)


def test_run_tflite_handles_batches_that_do_not_divide(trained_cnn, digits):
    _, (x_test, _) = digits
    tflite = ep.export_tflite(trained_cnn, batch_size=4)
    x = x_test[:10]  # 4 + 4 + 2 (padded)
    np.testing.assert_allclose(ep.run_tflite(tflite, x), trained_cnn.predict(x, verbose=0),
                               atol=1e-4)


@pytest.mark.parametrize("quantize", [None, "int8"])
@pytest.mark.parametrize("sparse_storage", [False, True])
def test_size_report_reads_back_each_kernels_sparsity(quantize, sparse_storage, sparse_cnn,
                                                      digits, tmp_path):
    (x, _), _ = digits
    path = tmp_path / "m.tflite"
    ep.export_tflite(sparse_cnn, path, quantize=quantize, sparse_storage=sparse_storage,
                     representative_data=x[:50] if quantize else None)
    report = ep.size_report(path)
    assert report.raw_bytes == os.path.getsize(path)
    assert report.gzip_bytes < report.raw_bytes
    expected = sorted(kernel_sparsities(sparse_cnn).values())
    # The converter folds BN into the conv kernel: a per-channel scale that keeps every zero.
    measured = sorted(w.sparsity for w in report.weights)
    np.testing.assert_allclose(measured, expected, atol=0.005)
    assert str(report).startswith(f"raw {report.raw_bytes} bytes")


@pytest.fixture(scope="module")
def int8_model(trained_cnn, digits):
    (x, _), _ = digits
    return ep.export_tflite(trained_cnn, quantize="int8", representative_data=x[:100],
                            int8_io=True)


def test_micro_export_compiles_with_gcc_and_holds_the_model(int8_model, tmp_path):
    out = ep.export_micro(int8_model, tmp_path / "digits-model")
    assert out.array_name == "digits_model"
    source = open(out.source_path).read()
    stored = bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", source))
    assert stored == int8_model
    assert f"{out.array_name}_len = {len(int8_model)};" in source
    assert "aligned(16)" in source
    user = tmp_path / "main.c"
    user.write_text('#include "digits-model.h"\n'
                    "unsigned int size(void) { return digits_model_len + digits_model[4]; }\n")
    for c_file in (out.source_path, user):
        subprocess.run(["gcc", "-c", "-Wall", "-Werror", "-std=c99", str(c_file), "-o",
                        str(tmp_path / (os.path.basename(str(c_file)) + ".o"))],
                       check=True, cwd=tmp_path)


def test_resolver_method_names_match_tflite_micros_header():
    # The names are checked against TFLite Micro's own header (see the data file), not our rule.
    path = os.path.join(os.path.dirname(__file__), "data", "tflm_op_resolver_methods.txt")
    with open(path) as table:
        expected = dict(line.split() for line in table if line.strip() and line[0] != "#")
    assert len(expected) > 80
    assert {op: _resolver_method(op) for op in expected} == expected


def test_op_resolver_lines_name_every_op_and_the_model_runs_in_tflite_micro(int8_model, digits):
    _, (x_test, _) = digits
    lines = ep.op_resolver_lines(int8_model)
    ops = operator_names(int8_model)
    assert lines[0] == f"static tflite::MicroMutableOpResolver<{len(ops)}> op_resolver;"
    assert "op_resolver.AddConv2D();" in lines and "op_resolver.AddFullyConnected();" in lines
    assert len(lines) == len(ops) + 1
    micro = runtime.Interpreter.from_bytes(int8_model)
    detail = micro.get_input_details(0)
    scale, zero_point = detail["quantization_parameters"]["scales"][0], \
        detail["quantization_parameters"]["zero_points"][0]
    for sample, litert_output in zip(x_test[:5], ep.run_tflite(int8_model, x_test[:5])):
        quantized = np.clip(np.round(sample / scale + zero_point), -128, 127).astype(np.int8)
        micro.set_input(quantized[None], 0)
        micro.invoke()
        micro_output = micro.get_output(0)[0]
        out = micro.get_output_details(0)["quantization_parameters"]
        dequantized = (micro_output.astype(np.float32) - out["zero_points"][0]) * out["scales"][0]
        np.testing.assert_allclose(dequantized, litert_output, atol=2 * out["scales"][0])


def test_micro_export_refuses_sparse_storage_and_writes_nothing(sparse_cnn, digits, tmp_path):
    (x, _), _ = digits
    sparse = ep.export_tflite(sparse_cnn, quantize="int8", representative_data=x[:50],
                              sparse_storage=True, int8_io=True)
    with pytest.raises(ValueError, match="sparse_storage=False"):
        ep.export_micro(sparse, tmp_path / "model")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"array_name": "2fast"}, "not a valid C identifier"),
    ({"alignment": 12}, "power of two"),
])
def test_micro_export_checks_its_arguments(int8_model, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ep.export_micro(int8_model, tmp_path / "model", **kwargs)
    assert os.listdir(tmp_path) == []
