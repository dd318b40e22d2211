"""The layout's rules, checked on the source (docs/architecture.md explains them).

Domain folders under ``app/`` depend one way: a domain may import the domains in the layers
below its own, the kit and the tables, never a domain above it or beside it (in its own
layer). :data:`LAYERS` is that order, top to bottom; a new domain folder must be placed in it
before this test passes. Below every domain: ``app/tables`` (imports the kit only, no library,
no domain) and ``app/kit`` (imports no domain, no table, not the migrations). The libraries
``asr/``, ``curation/`` and ``durable/`` never import ``app/``. The faces (``app/main.py``,
``app/cli.py``, ``app/worker.py``) put everything together and may import anything; nothing
imports them. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Top to bottom. Domains in one layer never import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("compliance",),  # checkpoints, exports, the compliance report: reads every domain below
    ("training",),  # jobs and promotion: reads training sets, samples, the model directory
    ("erasure",),  # erasure and retention purges: deletes samples, taints training sets
    ("datasets", "listen", "usage", "billing"),
    ("custom",),  # resellers' custom models: their data, versions and sharing
    ("ledger", "samples", "engine"),  # the request ledger; the encrypted store; the models
    ("sampling", "pricing"),  # which opted-in requests are kept; what a request costs
    ("consent",),  # the effective opt-out of a request and its source
    ("tenancy",),  # resellers, organizations, projects, keys
    ("audit", "health"),  # the audit log is a sink: everything writes to it, it reads nothing
)
FACES = frozenset({"main", "cli", "worker"})
BELOW_DOMAINS = frozenset({"kit", "tables"})
LIBRARIES = ("asr", "curation", "durable")


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module ``path`` imports, wherever the import statement is."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def layer_of(domain: str, layers: Sequence[Sequence[str]] = LAYERS) -> int:
    for index, layer in enumerate(layers):
        if domain in layer:
            return index
    raise KeyError(domain)


def domain_violations(root: Path, layers: Sequence[Sequence[str]] = LAYERS) -> list[str]:
    """``file: module`` for every import between domain folders that runs upward or sideways,
    and for every domain folder that is not placed in ``layers``."""
    found = []
    folders = sorted(p.name for p in (root / "app").iterdir() if p.is_dir() and any(p.glob("*.py")))
    for folder in folders:
        if folder in BELOW_DOMAINS:
            continue
        try:
            own = layer_of(folder, layers)
        except KeyError:
            found.append(f"app/{folder}: not placed in LAYERS")
            continue
        for path in sorted((root / "app" / folder).rglob("*.py")):
            for module in imported_modules(path):
                parts = module.split(".")
                if parts[0] != "app" or len(parts) < 2 or parts[1] in BELOW_DOMAINS:
                    continue
                target = parts[1]
                if target == folder:
                    continue
                if target in FACES:
                    found.append(f"{path.relative_to(root)}: {module} (a face)")
                    continue
                try:
                    below = layer_of(target, layers) > own
                except KeyError:
                    below = False
                if not below:
                    found.append(f"{path.relative_to(root)}: {module}")
    return found


def imports_of(root: Path, package: str, *, allowed: tuple[str, ...]) -> list[str]:
    """``file: module`` for each import under ``package`` of app/, a library or the
    migrations that is not in (or under) one of ``allowed``."""
    watched = ("app", "migrations", *LIBRARIES)
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for module in imported_modules(path):
            if module.split(".")[0] not in watched:
                continue  # the standard library or a third-party package
            if any(module == a or module.startswith(a + ".") for a in allowed):
                continue
            found.append(f"{path.relative_to(root)}: {module}")
    return found


class TestDomains:
    def test_domains_depend_one_way(self) -> None:
        assert domain_violations(ROOT) == []

    def test_every_layer_names_an_existing_domain(self) -> None:
        folders = {p.name for p in (ROOT / "app").iterdir() if p.is_dir() and any(p.glob("*.py"))}
        assert {d for layer in LAYERS for d in layer} <= folders


class TestFoundations:
    def test_tables_import_only_the_kit(self) -> None:
        assert imports_of(ROOT, "app/tables", allowed=("app.tables", "app.kit")) == []

    def test_kit_imports_no_domain_table_or_migration(self) -> None:
        assert imports_of(ROOT, "app/kit", allowed=("app.kit", "durable")) == []

    @pytest.mark.parametrize("library", ["asr", "curation"])
    def test_libraries_never_import_the_service(self, library: str) -> None:
        assert imports_of(ROOT, library, allowed=(library, "durable")) == []

    def test_durable_imports_nothing_of_ours(self) -> None:
        assert imports_of(ROOT, "durable", allowed=("durable",)) == []

    def test_tables_and_curation_name_the_same_attributes(self) -> None:
        from app.tables.samples import ATTRIBUTES
        from curation.vocabulary import ATTRIBUTE_COLUMNS

        assert ATTRIBUTES == ATTRIBUTE_COLUMNS


class TestTheCheckItself:
    """The checks can fail: a made-up tree with each kind of violation."""

    @staticmethod
    def tree(tmp_path: Path, files: dict[str, str]) -> Path:
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return tmp_path

    def test_upward_sideways_unplaced_and_face_imports_are_found(self, tmp_path: Path) -> None:
        root = self.tree(
            tmp_path,
            {
                "app/top/__init__.py": "",
                "app/top/service.py": "from app.low import service\n",
                "app/left/__init__.py": "",
                "app/left/service.py": "def f():\n    from app.right.service import g\n",
                "app/right/__init__.py": "",
                "app/right/service.py": "import app.main\n",
                "app/low/__init__.py": "",
                "app/low/service.py": "from app.top.service import x\nfrom app.kit import db\n",
                "app/stray/__init__.py": "",
                "app/kit/__init__.py": "",
            },
        )
        layers = (("top",), ("left", "right"), ("low",))
        assert domain_violations(root, layers) == [
            "app/left/service.py: app.right.service",
            "app/low/service.py: app.top.service",
            "app/right/service.py: app.main (a face)",
            "app/stray: not placed in LAYERS",
        ]

    def test_foundation_imports_are_found(self, tmp_path: Path) -> None:
        root = self.tree(
            tmp_path,
            {
                "app/kit/m.py": "import migrations.run\nfrom app.tables import x\nimport os\n",
                "app/tables/t.py": "from curation.vocabulary import V\nfrom app.kit import db\n",
            },
        )
        assert imports_of(root, "app/kit", allowed=("app.kit",)) == [
            "app/kit/m.py: migrations.run",
            "app/kit/m.py: app.tables",
        ]
        assert imports_of(root, "app/tables", allowed=("app.tables", "app.kit")) == [
            "app/tables/t.py: curation.vocabulary"
        ]

    def test_imports_inside_functions_are_seen(self, tmp_path: Path) -> None:
        module = tmp_path / "m.py"
        module.write_text("def f():\n    from app.listen import service\n    import app.tables\n")
        assert list(imported_modules(module)) == ["app.listen", "app.tables"]
