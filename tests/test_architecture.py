"""The layering holds: each package imports only the layers below it (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
OURS = ("ledger", "projections", "commands", "host_adapters", "tests", "scripts")

# package -> the packages of ours its modules may import (a prefix match on the dotted name).
ALLOWED = {
    "commands": (),
    "ledger": ("ledger",),
    "projections": ("projections", "ledger"),
    "commands.domain": ("commands.domain", "ledger", "projections", "host_adapters.protocols",
                        "host_adapters.errors", "host_adapters="),
    "commands.service": ("commands.service", "commands.domain", "ledger", "projections", "host_adapters"),
    "commands.cli": ("commands", "ledger", "projections", "host_adapters"),
    "host_adapters": ("host_adapters",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The dotted names of our modules that `path` imports, relative imports resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            else:
                found.add(node.module or "")
    return {name for name in found if name.split(".")[0] in OURS}


def _within(name: str, allowed: str) -> bool:
    """Whether module `name` is `allowed` or below it (`package=`: the package itself, none of its modules)."""
    if allowed.endswith("="):
        return name == allowed[:-1]
    return name == allowed or name.startswith(allowed + ".")


def _layer(module: str) -> str:
    return max((layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")), key=len)


PRODUCTION = sorted(path for package in ("ledger", "projections", "commands", "host_adapters")
                    for path in (PROJECT / package).rglob("*.py"))


@pytest.mark.parametrize("path", PRODUCTION, ids=lambda path: _module_name(path))
def test_each_module_imports_only_the_layers_below_its_own(path):
    allowed = ALLOWED[_layer(_module_name(path))]
    wrong = sorted(name for name in _imports(path) if not any(_within(name, ok) for ok in allowed))
    assert not wrong, f"{_module_name(path)} imports {wrong}"


def test_the_rules_import_no_adapter_beyond_the_host_protocols():
    for path in (PROJECT / "commands" / "domain").rglob("*.py"):
        adapters = {name for name in _imports(path) if name.startswith("host_adapters.")}
        assert adapters <= {"host_adapters.protocols", "host_adapters.errors"}, path


def test_the_host_adapters_package_exports_only_protocols_and_errors():
    assert _imports(PROJECT / "host_adapters" / "__init__.py") == {"host_adapters.protocols", "host_adapters.errors"}


# The rules decide and plan; files, processes, sockets and databases are the adapters' (steps only wait, on a clock).
IO_MODULES = {"os", "io", "subprocess", "socket", "sqlite3", "shutil", "fcntl", "urllib", "http", "a2s"}


def test_the_rules_do_no_io_of_their_own():
    for path in (PROJECT / "commands" / "domain").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and not node.level}
        called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call)
                  and isinstance(node.func, ast.Name)}
        assert not imported & IO_MODULES and "open" not in called, path


def test_no_production_module_imports_the_tests_or_the_scripts():
    for path in PRODUCTION:
        assert not {name for name in _imports(path) if name.split(".")[0] in ("tests", "scripts")}, path


def test_the_layer_table_names_every_production_package():
    packages = {_module_name(path) for path in PRODUCTION if path.name == "__init__.py"}
    assert packages == {"ledger", "projections", "commands", "commands.domain", "commands.service",
                        "commands.cli", "host_adapters"}
