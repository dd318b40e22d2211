"""write_atomic and atomic_path on real files: content, mode, and nothing partial ever visible."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable import atomic_path, fsync_folder, write_atomic


class Interrupted(Exception):
    """What a caller's chunk iterator or writer raises part-way."""


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def visible(folder: Path) -> list[str]:
    """What a reader scanning the folder for real files (not dot-named temporaries) sees."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def everything(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class TestWriteAtomic:
    def test_bytes_are_written_with_the_default_mode(self, tmp_path: Path) -> None:
        target = tmp_path / "out.bin"
        assert write_atomic(target, b"hello") == 5
        assert target.read_bytes() == b"hello"
        assert mode_of(target) == 0o644
        assert everything(tmp_path) == ["out.bin"]

    def test_chunks_are_streamed_in(self, tmp_path: Path) -> None:
        target = tmp_path / "out.bin"
        chunks = (bytes([n]) * 100_000 for n in range(10))
        assert write_atomic(target, chunks) == 1_000_000
        assert target.read_bytes() == b"".join(bytes([n]) * 100_000 for n in range(10))

    @pytest.mark.parametrize("data", [bytearray(b"abc"), memoryview(b"abc"), [b"a", b"", b"bc"]])
    def test_other_buffers_and_empty_chunks(
        self, tmp_path: Path, data: bytearray | memoryview | list[bytes]
    ) -> None:
        target = tmp_path / "out.bin"
        assert write_atomic(target, data) == 3
        assert target.read_bytes() == b"abc"

    def test_nothing_at_all(self, tmp_path: Path) -> None:
        target = tmp_path / "empty"
        assert write_atomic(target, []) == 0
        assert target.read_bytes() == b""

    @pytest.mark.parametrize("mode", [0o600, 0o644, 0o640])
    def test_the_mode_is_set_whatever_the_umask(self, tmp_path: Path, mode: int) -> None:
        target = tmp_path / "out.bin"
        previous = os.umask(0o077)
        try:
            write_atomic(target, b"x", mode=mode)
        finally:
            os.umask(previous)
        assert mode_of(target) == mode

    def test_an_existing_file_is_replaced_and_takes_the_new_mode(self, tmp_path: Path) -> None:
        target = tmp_path / "out.bin"
        target.write_bytes(b"old content, longer than the new")
        target.chmod(0o666)
        write_atomic(target, b"new", mode=0o600)
        assert target.read_bytes() == b"new"
        assert mode_of(target) == 0o600

    def test_a_failing_chunk_iterator_leaves_the_old_file_and_no_temp_file(
        self, tmp_path: Path
    ) -> None:
        target = tmp_path / "out.bin"
        target.write_bytes(b"old")

        def chunks() -> Iterator[bytes]:
            yield b"new" * 100_000
            raise Interrupted

        with pytest.raises(Interrupted):
            write_atomic(target, chunks())
        assert target.read_bytes() == b"old"
        assert everything(tmp_path) == ["out.bin"]

    def test_a_failure_before_any_file_existed_leaves_nothing(self, tmp_path: Path) -> None:
        def chunks() -> Iterator[bytes]:
            yield b"partial"
            raise Interrupted

        with pytest.raises(Interrupted):
            write_atomic(tmp_path / "out.bin", chunks())
        assert everything(tmp_path) == []

    def test_a_chunk_that_is_not_bytes_fails_cleanly(self, tmp_path: Path) -> None:
        with pytest.raises(TypeError):
            write_atomic(tmp_path / "out.bin", ["text"])  # type: ignore[list-item]
        assert everything(tmp_path) == []

    def test_a_reader_never_sees_a_partial_file(self, tmp_path: Path) -> None:
        target = tmp_path / "out.bin"
        target.write_bytes(b"old")
        seen: list[tuple[list[str], bytes]] = []

        def chunks() -> Iterator[bytes]:
            for n in range(5):
                seen.append((visible(tmp_path), target.read_bytes()))
                yield bytes([n]) * 10_000

        write_atomic(target, chunks())
        assert seen == [(["out.bin"], b"old")] * 5
        assert target.read_bytes() == b"".join(bytes([n]) * 10_000 for n in range(5))

    def test_the_temp_file_is_a_dot_name_beside_the_target_and_0600(self, tmp_path: Path) -> None:
        temps: list[Path] = []

        def chunks() -> Iterator[bytes]:
            temps.extend(p for p in tmp_path.iterdir() if p.name != "out.bin")
            yield b"x"

        write_atomic(tmp_path / "out.bin", chunks(), mode=0o644)
        [temp] = temps
        assert temp.name.startswith(".out.bin.")
        assert temp.name.endswith(".tmp")
        assert not temp.exists()

    def test_a_secret_is_never_readable_by_others(self, tmp_path: Path) -> None:
        modes: list[int] = []

        def chunks() -> Iterator[bytes]:
            [temp] = tmp_path.iterdir()
            modes.append(mode_of(temp))
            yield b"secret"

        write_atomic(tmp_path / "key.json", chunks(), mode=0o600)
        assert modes == [0o600]
        assert mode_of(tmp_path / "key.json") == 0o600

    def test_temp_dir_holds_the_temp_file(self, tmp_path: Path) -> None:
        temp_dir = tmp_path / ".tmp"
        temp_dir.mkdir()
        folder = tmp_path / "data"
        folder.mkdir()
        during: list[tuple[list[str], int]] = []

        def chunks() -> Iterator[bytes]:
            during.append((everything(folder), len(everything(temp_dir))))
            yield b"x"

        write_atomic(folder / "blob", chunks(), temp_dir=temp_dir)
        assert during == [([], 1)]
        assert everything(folder) == ["blob"]
        assert everything(temp_dir) == []

    def test_a_failure_with_temp_dir_leaves_it_empty(self, tmp_path: Path) -> None:
        temp_dir = tmp_path / ".tmp"
        temp_dir.mkdir()

        def chunks() -> Iterator[bytes]:
            yield b"x"
            raise Interrupted

        with pytest.raises(Interrupted):
            write_atomic(tmp_path / "blob", chunks(), temp_dir=temp_dir)
        assert everything(temp_dir) == []
        assert everything(tmp_path) == [".tmp"]

    def test_a_failed_rename_removes_the_temp_file(self, tmp_path: Path) -> None:
        (tmp_path / "a").write_bytes(b"a file, not a folder")
        temp_dir = tmp_path / ".tmp"
        temp_dir.mkdir()
        with pytest.raises(NotADirectoryError):
            write_atomic(tmp_path / "a" / "b", b"x", temp_dir=temp_dir)
        assert everything(temp_dir) == []

    @pytest.mark.parametrize(("sync", "calls"), [(True, 2), (False, 0)])
    def test_fsync_syncs_the_file_and_the_folder(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: bool, calls: int
    ) -> None:
        synced: list[int] = []
        real_fsync = os.fsync

        def counting_fsync(fd: int) -> None:
            synced.append(fd)
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", counting_fsync)
        write_atomic(tmp_path / "out.bin", b"x", fsync=sync)
        assert len(synced) == calls
        assert (tmp_path / "out.bin").read_bytes() == b"x"

    def test_a_str_path_works(self, tmp_path: Path) -> None:
        write_atomic(str(tmp_path / "out.bin"), b"x")
        assert (tmp_path / "out.bin").read_bytes() == b"x"


class TestAtomicPath:
    def test_a_writer_by_name(self, tmp_path: Path) -> None:
        target = tmp_path / "report.html"
        with atomic_path(target) as partial:
            assert partial.parent == tmp_path
            assert partial.name.startswith(".report.html.")
            assert partial.exists()
            partial.write_text("<p>done</p>")
            assert visible(tmp_path) == []
        assert target.read_text() == "<p>done</p>"
        assert mode_of(target) == 0o644
        assert everything(tmp_path) == ["report.html"]

    def test_a_failing_writer_leaves_the_old_file_and_no_temp_file(self, tmp_path: Path) -> None:
        target = tmp_path / "report.html"
        target.write_text("old")

        def write_half() -> None:
            with atomic_path(target) as partial:
                partial.write_text("half")
                raise Interrupted

        with pytest.raises(Interrupted):
            write_half()
        assert target.read_text() == "old"
        assert everything(tmp_path) == ["report.html"]

    def test_a_writer_that_removed_its_file_fails_cleanly(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out") as partial:
            partial.unlink()
        assert everything(tmp_path) == []

    @pytest.mark.parametrize("sync", [True, False])
    def test_mode_and_temp_dir(self, tmp_path: Path, sync: bool) -> None:
        temp_dir = tmp_path / "temps"
        temp_dir.mkdir()
        target = tmp_path / "out.bin"
        with atomic_path(target, mode=0o600, temp_dir=temp_dir, fsync=sync) as partial:
            assert partial.parent == temp_dir
            partial.write_bytes(b"x")
        assert target.read_bytes() == b"x"
        assert mode_of(target) == 0o600
        assert everything(temp_dir) == []


class TestFsyncFolder:
    def test_a_folder(self, tmp_path: Path) -> None:
        fsync_folder(tmp_path)
        fsync_folder(str(tmp_path))

    def test_a_file_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "f").write_bytes(b"")
        with pytest.raises(NotADirectoryError):
            fsync_folder(tmp_path / "f")
