"""The package's import order is a contract: a module imports only from those above it.

The order is ../shared/STYLE.md's "layout", adapted in one place: `plots` (a
leaf that imports nothing from tfvae) sits above `training`, whose run
directory holds figures. `export` sits below `models` and `training`; `VAE.export`
imports it inside the method, the one import allowed to point down.
"""

import ast
import pathlib

import tfvae

ORDER = ["_backend", "_quiet", "seeds", "layers", "priors", "losses", "bounds", "architectures", "inputs", "models",
         "data", "plots", "training", "export", "cli"]
IMPORTS_INSIDE_FUNCTIONS = {("models", "export")}
PACKAGE_DIR = pathlib.Path(tfvae.__file__).parent


def _files_of(module):
    """The source files of a top-level module of tfvae: `name.py`, or every file of the package `name/`."""
    path = PACKAGE_DIR / module
    return sorted(path.rglob("*.py")) if path.is_dir() else [p for p in [PACKAGE_DIR / f"{module}.py"] if p.is_file()]


def _imported_module(node):
    """The top-level tfvae modules an import node names."""
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfvae"):
        parts = node.module.split(".")
        return {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
    if isinstance(node, ast.Import):
        return {a.name.split(".")[1] for a in node.names if a.name.startswith("tfvae.")}
    return set()


def _tfvae_imports(module):
    """`(at_module_level, inside_functions)`: the tfvae modules that `module` imports, other than itself."""
    at_module_level, inside_functions = set(), set()
    for path in _files_of(module):
        tree = ast.parse(path.read_text())
        functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        nested = {id(inner) for function in functions for inner in ast.walk(function) if inner is not function}
        for node in ast.walk(tree):
            names = _imported_module(node) - {module}
            (inside_functions if id(node) in nested else at_module_level).update(names)
    return at_module_level, inside_functions


def test_every_module_is_in_the_order():
    modules = {p.stem for p in PACKAGE_DIR.glob("*.py")} | {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").is_file()}
    modules -= {"__init__", "__main__"}
    assert modules <= set(ORDER), f"add {sorted(modules - set(ORDER))} to ORDER"


def test_modules_import_only_from_modules_above_them():
    for position, module in enumerate(ORDER):
        below = set(ORDER[position:])
        at_module_level, inside_functions = _tfvae_imports(module)
        assert not at_module_level & below, f"{module} imports {at_module_level & below}"
        downward = {(module, name) for name in inside_functions & below}
        assert downward <= IMPORTS_INSIDE_FUNCTIONS, f"{module} imports {downward - IMPORTS_INSIDE_FUNCTIONS} in a function"


def test_the_layout_test_sees_imports_inside_packages_and_functions():
    """Guards the test itself: it must find the imports it checks."""
    assert "models" in _tfvae_imports("training")[0]
    assert "export" in _tfvae_imports("models")[1]
