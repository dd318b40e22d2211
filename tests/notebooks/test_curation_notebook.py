"""The DataOps notebook runs top to bottom and shows what it promises."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "curation.ipynb"
read_notebook: Callable[..., Any] = nbformat.read  # nbformat has no type hints


def outputs(cell: Any) -> list[Any]:
    return list(cell.get("outputs", []))


class TestCurationNotebook:
    def test_executes_and_shows_validation_balance_and_plots(self, tmp_path: Path) -> None:
        notebook = read_notebook(NOTEBOOK, as_version=4)
        client = NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute()
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        errors = [o for cell in code for o in outputs(cell) if o.output_type == "error"]
        assert errors == []
        texts = "".join(
            o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
            for cell in code
            for o in outputs(cell)
        )
        assert "'quarantined_rows': 6" in texts  # the six planted bad rows, no more
        assert "expect_column_values_to_be_in_set(consent)" in texts
        pngs = [o for cell in code for o in outputs(cell) if "image/png" in o.get("data", {})]
        assert len(pngs) == 2  # distributions and deficit
        assert "manifest_hash" in texts
