"""The `report` stage: report.md and report.html (plots embedded) from the run's state."""

import os

from edgeprune.recipe.stages.registry import Stage, register_stage


def run_report(ctx):
    """Writes report.md and report.html (plots embedded) from the run's state."""
    from edgeprune.recipe import report  # matplotlib: only when a report is drawn

    formats = ctx.recipe["report"]["formats"]
    written = report.write_report([ctx.out], ctx.path("report"), formats=formats,
                                  title=ctx.recipe["report"].get("title"))
    return {"outputs": {os.path.basename(p): os.path.relpath(p, ctx.out) for p in written}}


register_stage(Stage("report", run_report))
