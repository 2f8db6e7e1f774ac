"""The `qat` stage: quantization-aware fine-tuning that keeps the zeros
(`quantize.aware_training`)."""

import edgeprune as ep
from edgeprune.model.saving import save_model_atomically
from edgeprune.recipe.stages.registry import Stage, register_stage


def run_qat(ctx):
    """Quantization-aware fine-tuning with `ep.quantize_model` (zeros kept); saves `qat.keras`
    and, for conversion, `ep.strip_quantization` of it (kernels on the int8 grid)."""
    import keras

    from edgeprune.recipe import training

    settings = ctx.recipe["quantize"]["aware_training"]
    keras.utils.set_random_seed(ctx.recipe["seed"])

    def start():
        return training.compile_for(ep.quantize_model(ctx.load(ctx.latest_model())), settings)

    model = ctx.train("qat", start, settings["epochs"])
    save_model_atomically(model, ctx.path("qat.keras"))
    result = ctx.keras_result("qat", ep.strip_quantization(model), "qat_stripped.keras",
                              "quantization-aware + stripped (Keras)")
    result["outputs"]["qat"] = "qat.keras"
    return result


register_stage(Stage("qat", run_qat, lambda r: r["quantize"]["aware_training"]["epochs"] > 0))
