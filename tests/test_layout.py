"""The package's import order is a contract: a module imports only from those above it."""

import ast
import pathlib

import tfvae

# export sits above model: it needs only the VAE's public methods, and VAE.export calls it.
ORDER = ["_backend", "layers", "priors", "losses", "architectures", "bounds", "export", "model", "data", "plots", "training", "cli"]
PACKAGE_DIR = pathlib.Path(tfvae.__file__).parent


def _tfvae_imports(module):
    tree = ast.parse((PACKAGE_DIR / f"{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfvae"):
            parts = node.module.split(".")
            imported |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            imported |= {a.name.split(".")[1] for a in node.names if a.name.startswith("tfvae.")}
    return imported


def test_every_module_is_in_the_order():
    modules = {p.stem for p in PACKAGE_DIR.glob("*.py")} - {"__init__", "__main__"}
    assert modules <= set(ORDER), f"add {sorted(modules - set(ORDER))} to ORDER"


def test_modules_import_only_from_modules_above_them():
    for position, module in enumerate(ORDER):
        below = set(ORDER[position:])
        assert not _tfvae_imports(module) & below, f"{module} imports {_tfvae_imports(module) & below}"
