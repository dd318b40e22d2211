"""Balance charts: valid PNG files of a readable size, with their message in the text chunks."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import matplotlib
import matplotlib.image
import pandas as pd
import pytest

from curation import schema
from curation.balance import BalanceResult, BalanceSpec, balance
from curation.plots import plot_deficit, plot_distributions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, checking each CRC on the way."""
    blob = path.read_bytes()
    if blob[:8] != PNG_SIGNATURE:
        raise AssertionError(f"{path} is not a PNG")
    chunks, at = [], 8
    while at < len(blob):
        (length,) = struct.unpack(">I", blob[at : at + 4])
        kind, data = blob[at + 4 : at + 8], blob[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", blob[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + data) == crc
        chunks.append((kind, data))
        at += 12 + length
    return chunks


def png_size(path: Path) -> tuple[int, int]:
    kind, data = png_chunks(path)[0]
    assert kind == b"IHDR"
    width, height = struct.unpack(">II", data[:8])
    return width, height


def png_text(path: Path) -> dict[str, str]:
    texts = {}
    for kind, data in png_chunks(path):
        if kind == b"tEXt":
            key, _, value = data.partition(b"\x00")
            texts[key.decode("latin-1")] = value.decode("latin-1")
    return texts


def skewed_result(hours: float) -> BalanceResult:
    accents = ["us"] * 170 + ["rp", "indian", "irish", "scottish", "welsh", "australian"] * 5
    frame = schema.coerce(
        pd.DataFrame(
            {
                "sample_id": [f"p{i:04d}" for i in range(len(accents))],
                "duration": [6.0 + (i % 5) for i in range(len(accents))],
                "accent": accents,
                "sex": (["female", "male", None] * 100)[: len(accents)],
            }
        )
    )
    return balance(frame, BalanceSpec(("accent", "sex"), hours=hours))


SHORT = skewed_result(hours=0.2)  # the minorities hold ~0.05 h each: deficits
AMPLE = skewed_result(hours=0.02)  # every value has its share: no deficit


class TestDistributionPlot:
    def test_writes_a_readable_png(self, tmp_path: Path) -> None:
        path = plot_distributions(SHORT, tmp_path / "distributions.png")
        assert path == tmp_path / "distributions.png"
        width, height = png_size(path)
        assert 600 <= width <= 4000
        assert 300 <= height <= 4000
        assert path.stat().st_size > 10_000  # bars, ticks and labels, not a blank canvas
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[:2] == (height, width)
        assert png_text(path)["Title"].startswith("Balance: ")

    def test_creates_missing_folders(self, tmp_path: Path) -> None:
        path = plot_distributions(AMPLE, tmp_path / "reports" / "v1" / "distributions.png")
        assert path.is_file()

    def test_empty_input_still_plots(self, tmp_path: Path) -> None:
        empty = balance(schema.empty_manifest(), BalanceSpec(("accent",), hours=1.0))
        path = plot_distributions(empty, tmp_path / "empty.png")
        assert png_size(path)[0] >= 600

    def test_leaves_the_global_backend_alone(self, tmp_path: Path) -> None:
        backend = matplotlib.get_backend()
        params = dict(matplotlib.rcParams)
        plot_distributions(SHORT, tmp_path / "distributions.png")
        plot_deficit(SHORT, tmp_path / "deficit.png")
        assert matplotlib.get_backend() == backend
        assert dict(matplotlib.rcParams) == params


class TestDeficitPlot:
    def test_lists_the_short_groups(self, tmp_path: Path) -> None:
        assert not SHORT.deficit.empty
        path = plot_deficit(SHORT, tmp_path / "deficit.png")
        width, height = png_size(path)
        assert width >= 600
        assert height >= 300
        description = png_text(path)["Description"]
        for row in SHORT.deficit.itertuples():
            assert f"{row.dimension}={row.value}: {row.missing_hours:.3g} h" in description

    def test_says_no_deficit(self, tmp_path: Path) -> None:
        assert AMPLE.deficit.empty
        path = plot_deficit(AMPLE, tmp_path / "deficit.png")
        assert png_text(path)["Description"] == "no deficit"
        assert path.stat().st_size > 2_000

    def test_unwritable_path_raises(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        with pytest.raises(OSError):  # noqa: PT011 - FileExistsError or NotADirectoryError
            plot_deficit(SHORT, blocker / "deficit.png")
