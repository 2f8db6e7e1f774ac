"""The `convert` stage: the final model (and the dense baseline) to `.tflite`, a C array, ONNX.

On any Keras backend: `export_tflite` and `export_onnx` convert a JAX or PyTorch model through
TensorFlow in a child process where they must (see `edgeprune.quantize.on_tensorflow`).
"""

import os

import edgeprune as ep
from edgeprune.recipe.stages.registry import Stage, register_stage
from edgeprune.tf_logs import quiet


def run_convert(ctx):
    """Exports the final model (quantized as asked) and the dense baseline to `.tflite`."""
    from edgeprune.quantize.export import MODES  # imports Keras: only when the stage runs

    quantize = ctx.recipe["quantize"]
    mode = None if quantize["mode"] == "none" else quantize["mode"]
    calibrated = MODES[mode].calibrated
    final = ctx.load(ctx.latest_model())
    tflite = ep.export_tflite(
        final, ctx.path("model.tflite"), quantize=mode,
        representative_data=(ctx.data.calibration_samples(quantize["calibration_samples"])
                             if calibrated else None),
        int8_io=quantize["int8_io"], sparse_storage=quantize["sparse_storage"],
        num_calibration_samples=quantize["calibration_samples"])
    outputs, artifacts = {}, []
    export = ctx.recipe["export"]
    if export["baseline_tflite"] and ctx.latest_model() != ctx.output("baseline", "model"):
        # First, so that device_bench compares the final model against it.
        baseline = ctx.load(ctx.output("baseline", "model"))
        dense = ep.export_tflite(baseline, ctx.path("baseline.tflite"))
        outputs["baseline_tflite"] = "baseline.tflite"
        with quiet():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" line
            artifacts.append(ctx.tflite_row(dense, baseline, "baseline.tflite",
                                            "baseline .tflite (float32)"))
    outputs["tflite"] = "model.tflite"
    with quiet():
        artifacts.append(ctx.tflite_row(tflite, final, "model.tflite",
                                        f"final .tflite ({mode or 'float32'})"))
    if export["c_array"]:
        micro = ep.export_micro(tflite, ctx.path("micro/model_data"),
                                array_name=export.get("array_name"))
        outputs["c_header"] = os.path.relpath(micro.header_path, ctx.out)
        outputs["c_source"] = os.path.relpath(micro.source_path, ctx.out)
    if export["onnx"]:
        # float32, checked against the final Keras model with onnxruntime on test samples
        onnx = ep.export_onnx(final, ctx.path("model.onnx"), x=ctx.data.test_x[:64])
        ctx.log(f"onnx: model.onnx via {onnx.route}, max difference from Keras "
                f"{onnx.max_abs_diff:.3g} on {onnx.num_samples} test samples")
        outputs["onnx"] = "model.onnx"
    return {"outputs": outputs, "artifacts": artifacts}


register_stage(Stage("convert", run_convert))
