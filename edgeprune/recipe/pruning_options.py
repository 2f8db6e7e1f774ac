"""A recipe's `pruning` section: what is wrong with it, and its settings as
`prune_low_magnitude`'s options, checked by the granularity that takes them, so the recipe and
the library cannot disagree on what is valid."""

from edgeprune.recipe.schema import SCHEMA
from edgeprune.sparsity.granularity import get_granularity
from edgeprune.structured.criteria import criterion_names

# Recipe keys of a `pruning` section (or group) and the `prune_low_magnitude` options they set.
RECIPE_OPTIONS = {"scope": "pruning_scope", "block_size": "block_size",
                  "sparsity_m_by_n": "sparsity_m_by_n", "criterion": "criterion",
                  "round_to": "round_to", "min_channels": "min_channels"}
# The recipe's name for ranking single weights, where the library takes no criterion at all.
MAGNITUDE = "magnitude"


def given_options(settings):
    """`{recipe key: value}` of the options `settings` sets to something else than the schema's
    default (the loader fills defaults in; only a changed value asks for the option)."""
    defaults = SCHEMA["properties"]["pruning"]["properties"]
    return {key: settings[key] for key in RECIPE_OPTIONS if key in settings
            and settings[key] != defaults.get(key, {}).get("default")}


def library_options(settings, leave_out=()):
    """`prune_low_magnitude` keyword arguments for pruning `settings` (recipe keys in
    `leave_out` left out): the structure and the options it sets (lists as tuples); raises
    ValueError as the granularity does."""
    granularity = get_granularity(settings["structure"])
    given = given_options(settings)
    if settings["criterion"] != MAGNITUDE:
        given["criterion"] = settings["criterion"]
    options = {RECIPE_OPTIONS[key]: tuple(value) if isinstance(value, list) else value
               for key, value in given.items() if key not in leave_out}
    granularity.check_options(options)
    return {"structure": settings["structure"], **options}


def option_problems(where, settings):
    """What is wrong with the options of pruning `settings` (at key path `where`), one line
    each, naming the recipe key."""
    granularity = get_granularity(settings["structure"])
    problems, reported = [], []
    ranks_channels = "criterion" in granularity.options
    if ranks_channels and settings["criterion"] == MAGNITUDE:
        names = criterion_names()
        problems.append(f"{where}.criterion: structure: {settings['structure']} ranks by one of "
                        f"{', '.join(names[:-1])} or {names[-1]}")
    elif not ranks_channels and settings["criterion"] != MAGNITUDE:
        problems.append(f"{where}.criterion: {settings['criterion']!r} ranks channels; "
                        f"structure: {settings['structure']} uses {MAGNITUDE!r}")
        reported.append("criterion")
    for key in given_options(settings):
        if key != "criterion" and RECIPE_OPTIONS[key] not in granularity.options:
            problems.append(f"{where}.{key}: does not apply to structure: {settings['structure']}")
            reported.append(key)
    try:
        library_options(settings, leave_out=reported)
    except ValueError as error:
        problems.append(f"{where}: {error}")
    return problems


def pruning_problems(pruning):
    """What is wrong with a recipe's `pruning` section (None: nothing to check), one line each,
    naming the key path: its options, groups, allocation and iterative settings."""
    if pruning is None:
        return []
    problems = []
    for where, settings in [("pruning", pruning)] + [
            (f"pruning.groups[{i}]", g) for i, g in enumerate(pruning.get("groups", []))]:
        problems += option_problems(where, settings if where == "pruning" else {**pruning,
                                                                                **settings})
        schedule = settings.get("schedule", {})
        if schedule.get("kind", "polynomial_decay") == "polynomial_decay" and "end" in schedule \
                and schedule["end"] <= schedule.get("begin", 0):
            problems.append(f"{where}.schedule.end: must be after begin for polynomial_decay")
    allocation = pruning.get("allocation")
    if allocation:
        problems += [f"pruning.{key}: per-layer sparsities come from pruning.allocation; "
                     "leave it out" for key in ("groups", "sparsity_m_by_n") if key in pruning]
        problems += _allocation_problems(pruning, allocation)
    problems += _iterative_problems(pruning)
    if pruning["structure"] != "unstructured":
        # Groups and policies choose layers one by one; other granularities wrap what they
        # choose from the whole model (channels: the coupled groups of its graph).
        problems += [f"pruning.{key}: does not apply to structure: {pruning['structure']}"
                     for key in ("policy", "groups") if key in pruning]
    return problems


def _allocation_problems(pruning, allocation):
    budget = allocation["budget"]
    if isinstance(budget, dict):  # a latency budget: channels, planned on the device
        if pruning["structure"] != "channels":
            return ["pruning.allocation.budget: a latency budget allocates channels; set "
                    "pruning.structure: channels"]
        problems = [f"pruning.allocation.{key}: the latency budget sets the target; leave it "
                    "out" for key in ("target",) if key in allocation]
        if ("latency_ms" in budget) == ("latency_fraction" in budget):
            problems.append("pruning.allocation.budget: give latency_ms (milliseconds on the "
                            "device) or latency_fraction (of the dense model's), one of them")
        if allocation["method"] != "sensitivity":
            problems.append("pruning.allocation.budget: a latency budget needs method: "
                            "sensitivity")
        if "iterative" in pruning:
            problems.append("pruning.iterative: a latency budget's channel plan is fine-tuned "
                            "once; leave iterative out")
        return problems
    problems = []
    if pruning["structure"] != "unstructured":
        problems.append("pruning.allocation: recipes allocate unstructured sparsity, or "
                        "channels for a latency budget (budget: {latency_ms: ...})")
    if "target" not in allocation:
        return problems + ["pruning.allocation.target: required (what the budget allows)"]
    if allocation["method"] != "sensitivity" and budget != "sparsity":
        problems.append(f"pruning.allocation.budget: {budget!r} needs method: sensitivity")
    if budget == "sparsity" and allocation["target"] >= 1:
        problems.append("pruning.allocation.target: a sparsity budget is below 1")
    return problems


def _iterative_problems(pruning):
    """`ep.iterative_magnitude_pruning` prunes weights one-shot by magnitude each round: one
    target (or the allocation's per-layer ones), no schedule shapes, blocks, N:M or channels."""
    iterative = pruning.get("iterative")
    if iterative is None:
        return []
    problems = []
    if "allocation" in pruning:
        if "final_sparsity" in iterative:
            problems.append("pruning.iterative.final_sparsity: the per-layer targets come from "
                            "pruning.allocation; leave it out")
        if pruning["scope"] == "global":
            problems.append("pruning.scope: global ranks every layer against one target; the "
                            "allocation's per-layer targets need scope: layer")
    elif "final_sparsity" not in iterative:
        problems.append("pruning.iterative.final_sparsity: required (the sparsity after the "
                        "last round), unless pruning.allocation gives per-layer targets")
    if pruning["structure"] != "unstructured":
        problems.append(f"pruning.iterative: prunes single weights by magnitude; it does not "
                        f"apply to structure: {pruning['structure']}")
    problems += [f"pruning.{key}: does not apply to pruning.iterative (each round prunes "
                 "one-shot by magnitude)"
                 for key in ("block_size", "sparsity_m_by_n", "policy", "groups")
                 if key in pruning]
    return problems
