"""The dependency direction of ../shared/DESIGN.md, checked on the source: ``asr/`` and
``curation/`` are libraries that never import ``app/``, and ``app/kit`` (infrastructure) never
imports a domain. Imports inside functions count too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module ``path`` imports, wherever the import statement is."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def offending(package: str, allowed: str | None = None) -> list[str]:
    """``file: module`` for each import of ``app`` (other than ``allowed``) under ``package``."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in imported_modules(path):
            if module.split(".")[0] != "app":
                continue
            if allowed is not None and (module == allowed or module.startswith(allowed + ".")):
                continue
            found.append(f"{path.relative_to(ROOT)}: {module}")
    return found


@pytest.mark.parametrize("package", ["asr", "curation"])
def test_libraries_never_import_the_service(package: str) -> None:
    assert offending(package) == []


def test_kit_never_imports_a_domain() -> None:
    assert offending("app/kit", allowed="app.kit") == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from app.listen import service\n    import app.tables\n")
    assert list(imported_modules(module)) == ["app.listen", "app.tables"]
