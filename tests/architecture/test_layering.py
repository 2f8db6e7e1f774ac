"""The package layering: a lower package never imports a higher one, at any depth of a module
(imports inside functions count too), so each layer can be read, tested and replaced alone."""

import ast
import pathlib


ROOT = pathlib.Path(__file__).resolve().parents[2]
# Lower first; packages of one rank are peers and do not import each other.
RANKS = {"model": 0, "sparsity": 1, "structured": 2, "choose": 3, "quantize": 3, "recipe": 4,
         "cli": 5}


def imported_modules(path):
    """Every module `path` imports, top level and inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            # `from edgeprune import x` imports the module edgeprune.x when x is one
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def package_of(module):
    """The layer a dotted edgeprune module belongs to; "edgeprune" itself is the top."""
    parts = module.split(".")
    if parts[0] != "edgeprune":
        return None
    if len(parts) == 1:
        return "edgeprune"
    return parts[1] if parts[1] in RANKS else None


def root_rank(root):
    """`import edgeprune` loads what the package root imports, at once or on first use of a
    name (the modules its `_EXPORTS` table names): it ranks with the highest of it."""
    init = root / "edgeprune" / "__init__.py"
    imported = map(package_of, [*imported_modules(init), *lazy_modules(init)])
    return max(RANKS[p] for p in imported if p in RANKS)


def lazy_modules(path):
    """The modules named by the keys of a module's `_EXPORTS = {module: names}` table."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS"
                                                for t in node.targets):
            yield from ast.literal_eval(node.value)


def violations(root=ROOT):
    ranks = {**RANKS, "edgeprune": root_rank(root)}
    found = []
    for path in sorted((root / "edgeprune").rglob("*.py")):
        own = path.relative_to(root / "edgeprune").parts[0].removesuffix(".py")
        if own not in RANKS:
            continue  # the package root (__init__, data) sits above every layer
        for module in imported_modules(path):
            other = package_of(module)
            if other is None or other == own:
                continue
            if ranks[other] >= RANKS[own]:
                found.append(f"{path.relative_to(root)} ({own}) imports {module} ({other})")
    return found


def test_no_lower_package_imports_a_higher_one():
    assert violations() == []


def test_device_bench_imports_nothing_from_edgeprune():
    offenders = [f"{path.relative_to(ROOT)}: {module}"
                 for path in sorted((ROOT / "device_bench").rglob("*.py"))
                 for module in imported_modules(path) if module.split(".")[0] == "edgeprune"]
    assert offenders == []


def test_the_check_finds_an_upward_import_inside_a_function_and_of_the_root(tmp_path):
    package = tmp_path / "edgeprune"
    (package / "sparsity").mkdir(parents=True)
    (package / "__init__.py").write_text("from edgeprune.choose import allocate\n")
    (package / "sparsity" / "core.py").write_text(
        "def f():\n    from edgeprune.recipe import runner\n")
    (package / "sparsity" / "other.py").write_text("import edgeprune as ep\n")
    assert violations(tmp_path) == [
        "edgeprune/sparsity/core.py (sparsity) imports edgeprune.recipe (recipe)",
        "edgeprune/sparsity/core.py (sparsity) imports edgeprune.recipe.runner (recipe)",
        "edgeprune/sparsity/other.py (sparsity) imports edgeprune (edgeprune)"]
