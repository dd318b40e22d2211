"""Training-data archives: pairs by name and by manifest, every problem code, bombs, refusals.

Every archive is a real zip or tar built here; the audio is real WAV written by soundfile.
"""

from __future__ import annotations

import gzip
import io
import lzma
import stat
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import soundfile as sf

from curation.archives import (
    PROBLEM_CODES,
    ArchiveError,
    ArchiveLimits,
    ArchiveTooLarge,
    BadManifest,
    CorruptArchive,
    EntryProblem,
    NotAnArchive,
    open_training_archive,
    read_training_archive,
)

RATE = 16_000
LIMITS = ArchiveLimits()
BOMB_SIZE = 50 * 2**20  # zeros: deflate makes ~50 KB of them
MiB = 2**20

Entries = Iterable[tuple[str | zipfile.ZipInfo | tarfile.TarInfo, bytes]]


def wav(seconds: float = 0.05, hz: float = 440.0) -> bytes:
    time = np.arange(int(RATE * seconds)) / RATE
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * hz * time), RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def build_zip(path: Path, entries: Entries) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicates we want
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries:
                assert not isinstance(name, tarfile.TarInfo)
                archive.writestr(name, data)
    return path


def build_tar(path: Path, entries: Entries, mode: Literal["w", "w:gz"] = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in entries:
            assert not isinstance(name, zipfile.ZipInfo)
            info = name if isinstance(name, tarfile.TarInfo) else tarfile.TarInfo(name)
            if info.isreg():
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return path


def tar_entry(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


class Zeros:
    """A file of ``size`` zero bytes, never held whole."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return bytes(size)


def codes(problems: Iterable[EntryProblem]) -> set[tuple[str, str]]:
    return {(problem.code, problem.name) for problem in problems}


GOOD = [("ok.wav", wav()), ("ok.txt", b"fine")]


class TestNameMatching:
    def test_zip_pairs_each_audio_with_the_transcript_beside_it(self, tmp_path: Path) -> None:
        first, second = wav(hz=440), wav(hz=880)
        path = build_zip(
            tmp_path / "upload.zip",
            [
                (zipfile.ZipInfo("a/"), b""),
                ("a/b/call-01.wav", first),
                ("a/b/call-01.txt", "  hello there, café\n".encode()),
                ("a/b/call-02.WAV", second),
                ("a/b/call-02.txt", b"\xef\xbb\xbfsecond call"),  # a byte-order mark
                ("__MACOSX/a/b/._call-01.wav", b"junk"),
                ("a/.DS_Store", b"junk"),
                ("Thumbs.db", b"junk"),
            ],
        )
        contents = read_training_archive(path, limits=LIMITS)

        assert (contents.format, contents.mode, contents.problems) == ("zip", "names", ())
        assert [(p.name, p.transcript, p.speaker) for p in contents.pairs] == [
            ("a/b/call-01.wav", "hello there, café", None),
            ("a/b/call-02.WAV", "second call", None),
        ]
        assert [p.audio for p in contents.pairs] == [first, second]
        samples, rate = sf.read(io.BytesIO(contents.pairs[0].audio))
        assert rate == RATE
        assert len(samples) == int(RATE * 0.05)

    def test_tar_gz_from_a_file_object_with_dot_slash_names(self, tmp_path: Path) -> None:
        audio = wav()
        path = build_tar(
            tmp_path / "upload.tgz",
            [
                (tar_entry(".", tarfile.DIRTYPE), b""),
                (tar_entry("./calls", tarfile.DIRTYPE), b""),
                ("./calls/one.flac", audio),
                ("./calls/one.txt", b"one\n"),
                ("./calls/._one.flac", b"junk"),
            ],
        )
        with path.open("rb") as file:
            contents = read_training_archive(file, limits=LIMITS)

        assert (contents.format, contents.problems) == ("tar.gz", ())
        assert [(p.name, p.audio, p.transcript) for p in contents.pairs] == [
            ("calls/one.flac", audio, "one")
        ]
        assert contents.stats.entries == 5

    def test_a_plain_tar_and_decomposed_names(self, tmp_path: Path) -> None:
        audio = wav()
        # macOS writes "é" as "e" and a combining accent; the transcript was typed composed.
        path = build_tar(
            tmp_path / "upload.tar",
            [("cafe\u0301.wav", audio), ("caf\u00e9.txt", b"coffee")],
            mode="w",
        )
        contents = read_training_archive(path, limits=LIMITS)

        assert contents.format == "tar"
        assert [(p.name, p.transcript) for p in contents.pairs] == [("caf\u00e9.wav", "coffee")]


class TestManifest:
    def test_csv_with_speakers_inline_text_and_transcript_files(self, tmp_path: Path) -> None:
        manifest = (
            "Audio,transcript,transcript_file,speaker\n"
            'calls/a.wav,"hello, world",,agent\n'
            "calls/b.wav,,texts/b.txt,\n"
            "calls/missing.wav,gone,,agent\n"
            "calls/c.wav,,,caller\n"
        )
        a, b = wav(hz=300), wav(hz=600)
        path = build_zip(
            tmp_path / "upload.zip",
            [
                ("manifest.csv", manifest.encode()),
                ("calls/a.wav", a),
                ("calls/b.wav", b),
                ("calls/c.wav", wav()),
                ("calls/unlisted.wav", wav()),
                ("texts/b.txt", b"from a file\n"),
                ("texts/stray.txt", b"nobody names me"),
                ("calls/a.txt", b"ignored: the manifest rules"),
            ],
        )
        contents = read_training_archive(path, limits=LIMITS)

        assert contents.mode == "manifest"
        assert [(p.name, p.audio, p.transcript, p.speaker) for p in contents.pairs] == [
            ("calls/a.wav", a, "hello, world", "agent"),
            ("calls/b.wav", b, "from a file", None),
        ]
        rows = {(p.code, p.line) for p in contents.problems if p.name == "manifest.csv"}
        assert rows == {("bad_manifest_row", 4), ("bad_manifest_row", 5)}
        assert codes(p for p in contents.problems if p.line is None) == {
            ("audio_without_transcript", "calls/c.wav"),
            ("audio_without_transcript", "calls/unlisted.wav"),
            ("transcript_without_audio", "texts/stray.txt"),
            ("transcript_without_audio", "calls/a.txt"),
        }

    def test_jsonl_with_speakers_and_bad_rows(self, tmp_path: Path) -> None:
        lines = [
            '{"audio": "x.wav", "transcript": "first", "speaker": "ana"}',
            '{"audio": "./y.mp3", "transcript_file": "y.txt", "speaker": null}',
            "",
            "{not json",
            '["a", "list"]',
            '{"audio": "z.wav", "transcript": "both", "transcript_file": "y.txt"}',
            '{"audio": "z.wav", "transcript": 3}',
            '{"audio": "w.wav", "transcript": "one"}',
            '{"audio": "w.wav", "transcript": "two"}',
            '{"audio": "../x.wav", "transcript": "escape"}',
        ]
        path = build_tar(
            tmp_path / "upload.tar.gz",
            [
                ("x.wav", wav()),
                ("y.mp3", wav()),
                ("y.txt", b"why"),
                ("z.wav", wav()),
                ("w.wav", wav()),
                ("manifest.jsonl", "\n".join(lines).encode()),  # after the audio it names
            ],
        )
        contents = read_training_archive(path, limits=LIMITS)

        assert [(p.name, p.transcript, p.speaker) for p in contents.pairs] == [
            ("x.wav", "first", "ana"),
            ("y.mp3", "why", None),
        ]
        bad = {p.line for p in contents.problems if p.code == "bad_manifest_row"}
        assert bad == {4, 5, 6, 7, 9, 10}
        # w.wav is listed twice: its rows say so, neither is used.
        assert codes(p for p in contents.problems if p.line is None) == {
            ("audio_without_transcript", "z.wav")
        }

    def test_a_row_naming_refused_audio_says_why(self, tmp_path: Path) -> None:
        path = build_zip(
            tmp_path / "upload.zip",
            [
                ("manifest.csv", b"audio,transcript\nbig.wav,too long\n"),
                ("big.wav", wav(seconds=1)),
            ],
        )
        contents = read_training_archive(path, limits=ArchiveLimits(max_entry_bytes=1000))

        assert contents.pairs == ()
        assert [(p.code, p.message) for p in contents.problems][1] == (
            "bad_manifest_row",
            "audio big.wav is refused (entry_too_large)",
        )

    @pytest.mark.parametrize(
        ("entries", "message"),
        [
            ([("manifest.csv", b"file,text\na.wav,hi\n")], "needs the columns audio"),
            ([("manifest.csv", b"")], "is empty"),
            ([("manifest.csv", b"audio,transcript\n\xff\n")], "not UTF-8"),
            (
                [("manifest.csv", b"audio,transcript\n"), ("manifest.jsonl", b"")],
                "more than one manifest",
            ),
        ],
    )
    def test_an_unusable_manifest_refuses_the_archive(
        self, tmp_path: Path, entries: Entries, message: str
    ) -> None:
        path = build_zip(tmp_path / "upload.zip", [*entries, *GOOD])
        with pytest.raises(BadManifest, match=message) as refused:
            read_training_archive(path, limits=LIMITS)
        assert refused.value.code == "bad_manifest"


class TestProblems:
    """Each code from a crafted archive; the good pair beside it is still accepted."""

    def read(self, path: Path, limits: ArchiveLimits = LIMITS) -> set[tuple[str, str]]:
        contents = read_training_archive(path, limits=limits)
        assert [pair.name for pair in contents.pairs] == ["ok.wav"]
        return codes(contents.problems)

    @pytest.mark.parametrize(
        "name",
        [
            "/etc/cron.d/x.wav",
            "../x.wav",
            "a/../../x.wav",
            "C:/Windows/x.wav",
            "a\\..\\..\\x.wav",
            "a\nb.wav",
            "\u202evaw.exe",
        ],
    )
    def test_unsafe_paths_in_a_zip(self, tmp_path: Path, name: str) -> None:
        path = build_zip(tmp_path / "upload.zip", [(name, wav()), *GOOD])
        problems = self.read(path)
        assert {code for code, _ in problems} == {"unsafe_path"}

    @pytest.mark.parametrize("name", ["/abs.wav", "../x.wav", "./a/../../x.txt"])
    def test_unsafe_paths_in_a_tar(self, tmp_path: Path, name: str) -> None:
        path = build_tar(tmp_path / "upload.tar", [(name, wav()), *GOOD], mode="w")
        assert self.read(path) == {("unsafe_path", name)}

    def test_tar_links_and_devices(self, tmp_path: Path) -> None:
        entries = [
            (tar_entry("s.wav", tarfile.SYMTYPE, "/etc/passwd"), b""),
            (tar_entry("s.txt", tarfile.LNKTYPE, "ok.txt"), b""),
            (tar_entry("h.wav", tarfile.LNKTYPE, "ok.wav"), b""),
            (tar_entry("dev.wav", tarfile.CHRTYPE), b""),
            (tar_entry("pipe.txt", tarfile.FIFOTYPE), b""),
        ]
        path = build_tar(tmp_path / "upload.tar.gz", [*GOOD, *entries])
        # The links' partners are not reported again as orphans.
        assert self.read(path) == {
            ("link", "s.wav"),
            ("link", "s.txt"),
            ("link", "h.wav"),
            ("link", "dev.wav"),
            ("link", "pipe.txt"),
        }

    def test_a_zip_symlink_by_its_external_attributes(self, tmp_path: Path) -> None:
        link = zipfile.ZipInfo("link.wav")
        link.create_system = 3  # Unix
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        path = build_zip(tmp_path / "upload.zip", [(link, b"/etc/passwd"), *GOOD])
        assert self.read(path) == {("link", "link.wav")}

    def test_orphans(self, tmp_path: Path) -> None:
        entries = [("a/lonely.wav", wav()), ("b/lonely.txt", b"no audio here")]
        path = build_zip(tmp_path / "upload.zip", [*entries, *GOOD])
        assert self.read(path) == {
            ("audio_without_transcript", "a/lonely.wav"),
            ("transcript_without_audio", "b/lonely.txt"),
        }

    def test_unsupported_files_and_nested_archives(self, tmp_path: Path) -> None:
        inner = build_zip(tmp_path / "inner.zip", GOOD).read_bytes()
        entries = [("notes.pdf", b"%PDF"), ("more.zip", inner), ("sub/manifest.csv", b"")]
        path = build_zip(tmp_path / "upload.zip", [*entries, *GOOD])
        contents = read_training_archive(path, limits=LIMITS)

        assert {p.name: p.code for p in contents.problems} == dict.fromkeys(
            ["notes.pdf", "more.zip", "sub/manifest.csv"], "unsupported_file"
        )
        assert "not expanded" in contents.problems[1].message
        assert contents.mode == "names"  # a manifest below the root is not the manifest

    def test_a_transcript_that_is_not_utf8(self, tmp_path: Path) -> None:
        entries = [("latin.wav", wav()), ("latin.txt", "café".encode("latin-1"))]
        path = build_tar(tmp_path / "upload.tar.gz", [*entries, *GOOD])
        assert self.read(path) == {("not_utf8", "latin.txt")}

    def test_duplicate_names(self, tmp_path: Path) -> None:
        entries = [
            ("twice.wav", wav()),
            ("twice.wav", wav(hz=900)),
            ("twice.txt", b"which audio?"),
            ("call.wav", wav()),
            ("call.mp3", wav()),
            ("call.txt", b"which format?"),
        ]
        path = build_zip(tmp_path / "upload.zip", [*entries, *GOOD])
        assert self.read(path) == {
            ("duplicate_name", "twice.wav"),
            ("duplicate_name", "call.wav"),
        }

    def test_a_dot_slash_copy_is_a_duplicate_in_a_tar(self, tmp_path: Path) -> None:
        entries = [("x.wav", wav()), ("./x.wav", wav(hz=900)), ("x.txt", b"x")]
        path = build_tar(tmp_path / "upload.tar", [*entries, *GOOD], mode="w")
        assert self.read(path) == {("duplicate_name", "x.wav")}

    def test_a_compression_zipfile_cannot_bound_is_unreadable(self, tmp_path: Path) -> None:
        path = tmp_path / "upload.zip"
        build_zip(path, GOOD)
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("b.wav", wav(), compress_type=zipfile.ZIP_BZIP2)
            archive.writestr("b.txt", b"bee")
        assert self.read(path) == {("unreadable_entry", "b.wav")}

    def test_an_entry_over_the_limit(self, tmp_path: Path) -> None:
        entries = [("long.wav", wav(seconds=1)), ("long.txt", b"long")]
        path = build_tar(tmp_path / "upload.tar.gz", [*entries, *GOOD])
        limits = ArchiveLimits(max_entry_bytes=10_000)
        assert self.read(path, limits) == {("entry_too_large", "long.wav")}

    def test_the_codes_are_stable(self) -> None:
        # Callers (the service, resellers' tooling) match on these: renaming one breaks them.
        stable = {
            "unsafe_path",
            "link",
            "audio_without_transcript",
            "transcript_without_audio",
            "unsupported_file",
            "unreadable_entry",
            "duplicate_name",
            "bad_manifest_row",
            "not_utf8",
            "entry_too_large",
        }
        assert set(PROBLEM_CODES) == stable


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """50 MB of zeros as bomb.wav (with bomb.txt), zipped and tar-gzipped."""
    folder = tmp_path_factory.mktemp("bombs")
    with zipfile.ZipFile(folder / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb.wav", "w") as entry:
            for _ in range(BOMB_SIZE // MiB):
                entry.write(bytes(MiB))
        archive.writestr("bomb.txt", b"silence")
    with tarfile.open(folder / "bomb.tar.gz", "w:gz", compresslevel=6) as tar:
        info = tarfile.TarInfo("bomb.wav")
        info.size = BOMB_SIZE
        tar.addfile(info, Zeros(BOMB_SIZE))
    return {"zip": folder / "bomb.zip", "tar.gz": folder / "bomb.tar.gz"}


def forge_declared_size(path: Path, size: int) -> Path:
    """Make the single entry's local and central headers declare ``size`` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    struct.pack_into("<L", data, 22, size)  # local file header, uncompressed size
    [directory] = struct.unpack_from("<L", data, data.rindex(b"PK\x05\x06") + 16)
    struct.pack_into("<L", data, directory + 24, size)  # its central directory record
    forged = path.with_name("forged.zip")
    forged.write_bytes(data)
    return forged


class TestBombs:
    def test_a_zip_entry_stops_one_byte_past_the_entry_limit(self, bombs: dict[str, Path]) -> None:
        limits = ArchiveLimits(max_entry_bytes=MiB, max_total_bytes=64 * MiB, max_ratio=None)
        contents = read_training_archive(bombs["zip"], limits=limits)

        assert contents.pairs == ()
        assert codes(contents.problems) == {("entry_too_large", "bomb.wav")}
        assert contents.stats.bytes_read <= MiB + 1 + len(b"silence")
        assert contents.stats.compressed_bytes_read < BOMB_SIZE // 100

    def test_a_zip_entry_that_inflates_too_far_is_refused_early(
        self, bombs: dict[str, Path]
    ) -> None:
        limits = ArchiveLimits(max_entry_bytes=BOMB_SIZE * 2, max_total_bytes=BOMB_SIZE * 4)
        assert limits.max_ratio == 200
        contents = read_training_archive(bombs["zip"], limits=limits)

        [problem] = contents.problems
        assert (problem.code, problem.name) == ("entry_too_large", "bomb.wav")
        assert "times its compressed size" in problem.message
        assert contents.stats.bytes_read < BOMB_SIZE // 8

    def test_a_zip_header_that_understates_its_entry(
        self, bombs: dict[str, Path], tmp_path: Path
    ) -> None:
        zipped = tmp_path / "bomb.zip"
        zipped.write_bytes(bombs["zip"].read_bytes())
        with zipfile.ZipFile(zipped) as archive:
            assert archive.getinfo("bomb.wav").header_offset == 0
        forged = forge_declared_size(zipped, 200_000)  # it inflates to 50 MB
        limits = ArchiveLimits(max_entry_bytes=MiB, max_ratio=None)

        with pytest.raises(CorruptArchive, match="CRC") as refused:
            read_training_archive(forged, limits=limits)
        assert refused.value.code == "corrupt_archive"
        # zipfile stops at the declared size and checks the CRC there, inside the last read.
        assert 100_000 < refused.value.stats.bytes_read <= 200_000

    def test_a_zip_over_the_total_is_refused_whole(self, tmp_path: Path) -> None:
        entries = [(f"{n}.wav", bytes(400_000)) for n in range(4)]
        path = build_zip(tmp_path / "upload.zip", [*entries, *GOOD])
        limits = ArchiveLimits(max_total_bytes=MiB, max_ratio=None)

        with pytest.raises(ArchiveTooLarge) as refused:
            read_training_archive(path, limits=limits)
        assert refused.value.code == "total_too_large"
        assert refused.value.stats.bytes_read == MiB + 1

    def test_a_tar_gz_bomb_is_refused_by_its_ratio(self, bombs: dict[str, Path]) -> None:
        with pytest.raises(ArchiveTooLarge) as refused:
            read_training_archive(bombs["tar.gz"], limits=LIMITS)
        assert refused.value.code == "ratio_too_high"
        assert refused.value.stats.bytes_read < BOMB_SIZE // 8

    def test_a_tar_gz_bomb_is_refused_at_the_total(self, bombs: dict[str, Path]) -> None:
        limits = ArchiveLimits(max_total_bytes=2 * MiB, max_ratio=None)
        with pytest.raises(ArchiveTooLarge) as refused:
            read_training_archive(bombs["tar.gz"], limits=limits)
        assert refused.value.code == "total_too_large"
        assert refused.value.stats.bytes_read == 2 * MiB + 1


class TestEntryCount:
    def test_a_zip_with_too_many_entries_is_refused_before_its_directory_is_read(
        self, tmp_path: Path
    ) -> None:
        path = build_zip(tmp_path / "upload.zip", [(f"{n}.txt", b"") for n in range(11)])
        with pytest.raises(ArchiveTooLarge) as refused:
            read_training_archive(path, limits=ArchiveLimits(max_entries=10))
        assert refused.value.code == "too_many_entries"
        assert refused.value.stats.entries == 0

    def test_a_zip_whose_end_record_understates_its_entries(self, tmp_path: Path) -> None:
        path = build_zip(tmp_path / "upload.zip", [(f"{n}.txt", b"") for n in range(11)])
        data = bytearray(path.read_bytes())
        struct.pack_into("<2H", data, data.rindex(b"PK\x05\x06") + 8, 1, 1)
        path.write_bytes(data)

        with pytest.raises(ArchiveTooLarge) as refused:
            read_training_archive(path, limits=ArchiveLimits(max_entries=10))
        assert refused.value.code == "too_many_entries"
        assert refused.value.stats.entries == 11

    def test_a_tar_with_too_many_entries(self, tmp_path: Path) -> None:
        path = build_tar(tmp_path / "upload.tar.gz", [(f"{n}.txt", b"") for n in range(11)])
        with pytest.raises(ArchiveTooLarge) as refused:
            read_training_archive(path, limits=ArchiveLimits(max_entries=10))
        assert refused.value.code == "too_many_entries"


class TestRefusedArchives:
    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (wav(), "neither a zip nor a tar"),
            (b"audio,transcript\n", "neither a zip nor a tar"),
            (b"", "neither a zip nor a tar"),
            (gzip.compress(b"just text " * 100, mtime=0), "not a tar archive"),
            (lzma.compress(b"x" * 1000), "only gzip-compressed"),
        ],
    )
    def test_not_an_archive(self, tmp_path: Path, data: bytes, message: str) -> None:
        path = tmp_path / "upload.zip"
        path.write_bytes(data)
        with pytest.raises(NotAnArchive, match=message) as refused:
            read_training_archive(path, limits=LIMITS)
        assert refused.value.code == "not_an_archive"

    @pytest.mark.parametrize("suffix", ["zip", "tar.gz", "tar"])
    def test_a_truncated_archive(self, tmp_path: Path, suffix: str) -> None:
        entries = [(f"{n}.wav", wav(hz=200 + n)) for n in range(3)]
        path = tmp_path / f"upload.{suffix}"
        if suffix == "zip":
            build_zip(path, entries)
        else:
            build_tar(path, entries, mode="w" if suffix == "tar" else "w:gz")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2 - 100])  # inside an entry's data

        with pytest.raises(CorruptArchive) as refused:
            read_training_archive(path, limits=LIMITS)
        assert refused.value.code == "corrupt_archive"

    def test_a_tar_cut_between_two_members(self, tmp_path: Path) -> None:
        path = build_tar(tmp_path / "upload.tar", [("a.txt", b"a" * 512), *GOOD], mode="w")
        path.write_bytes(path.read_bytes()[:1024])  # a's header and data, nothing after
        with pytest.raises(CorruptArchive, match="end-of-archive marker"):
            read_training_archive(path, limits=LIMITS)

    def test_a_huge_extended_tar_header_is_not_read_into_memory(self, tmp_path: Path) -> None:
        header = tar_entry("PaxHeader", tarfile.XHDTYPE)
        header.size = 4 * MiB
        path = tmp_path / "upload.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            tar.addfile(header, Zeros(header.size))
        with pytest.raises(CorruptArchive, match="extended header") as refused:
            read_training_archive(path, limits=LIMITS)
        assert refused.value.stats.bytes_read < MiB

    def test_limits_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            ArchiveLimits(max_entries=0)
        with pytest.raises(ValueError, match="above 1"):
            ArchiveLimits(max_ratio=0.5)

    def test_every_refusal_is_an_archive_error(self) -> None:
        refusals = (NotAnArchive, CorruptArchive, ArchiveTooLarge, BadManifest)
        assert all(issubclass(kind, ArchiveError) for kind in refusals)


class TestStreaming:
    def test_problems_and_names_come_before_the_audio(self, tmp_path: Path) -> None:
        first, second = wav(hz=300), wav(hz=500)
        entries = [("b.wav", second), ("b.txt", b"b"), ("a.wav", first), ("a.txt", b"a")]
        path = build_tar(tmp_path / "upload.tar.gz", [*entries, ("lonely.wav", wav())])
        with open_training_archive(path, limits=LIMITS) as archive:
            assert archive.names == ("b.wav", "a.wav")  # the archive's order
            assert codes(archive.problems) == {("audio_without_transcript", "lonely.wav")}
            pairs = archive.pairs()
            assert next(pairs).audio == second
            assert next(pairs).audio == first
            assert next(pairs, None) is None
            again = [pair.name for pair in archive.pairs()]
        assert again == ["b.wav", "a.wav"]

    def test_a_pair_never_prints_its_audio_or_transcript(self, tmp_path: Path) -> None:
        path = build_zip(tmp_path / "upload.zip", [("s.wav", wav()), ("s.txt", b"secret words")])
        [pair] = read_training_archive(path, limits=LIMITS).pairs
        assert pair.transcript == "secret words"
        assert "secret" not in repr(pair)
        assert "RIFF" not in repr(pair)

    def test_an_archive_that_changes_after_its_scan(self, tmp_path: Path) -> None:
        path = build_tar(tmp_path / "upload.tar.gz", [("a.wav", wav()), ("a.txt", b"a")])
        with open_training_archive(path, limits=LIMITS) as archive:
            build_tar(path, [("a.wav", wav(seconds=0.2)), ("a.txt", b"a")])
            with pytest.raises(CorruptArchive, match="changed"):
                list(archive.pairs())

    def test_an_unseekable_source_is_refused(self) -> None:
        class Pipe(io.RawIOBase):
            def seekable(self) -> bool:
                return False

        with pytest.raises(ValueError, match="seekable"):
            read_training_archive(Pipe(), limits=LIMITS)  # type: ignore[arg-type]
