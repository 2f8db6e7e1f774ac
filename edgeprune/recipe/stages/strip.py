"""The `strip` stage: masks baked in with `ep.strip_pruning`, and `ep.shrink` (`strip.shrink`)."""

import edgeprune as ep
from edgeprune.recipe.stages.registry import Stage, register_stage


def run_strip(ctx):
    """Bakes the masks in with `ep.strip_pruning`; with `strip.shrink`, `ep.shrink` removes the
    all-zero channels."""
    stripped = ep.strip_pruning(ctx.load(ctx.output("prune", "pruned")))
    result = ctx.keras_result("strip", stripped, "stripped.keras", "pruned + stripped (Keras)")
    if ctx.recipe["strip"]["shrink"]:
        shrunk = ctx.keras_result("strip", ep.shrink(stripped), "shrunk.keras",
                                  "shrunk (Keras)")
        result["outputs"]["model"] = shrunk["outputs"]["model"]
        result["artifacts"] += shrunk["artifacts"]
    return result


register_stage(Stage("strip", run_strip, lambda r: "pruning" in r))
