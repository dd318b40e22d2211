"""Decode uploaded audio (WAV, FLAC, OGG, MP3) to 16 kHz mono float32.

Everything that is not one of those four formats, or is empty, truncated or longer than the
caller's limit, raises an :class:`AudioError` with a message that says what is wrong and what is
accepted. Messages never quote the audio bytes.

    audio = decode(wav_bytes, max_seconds=600)
    audio.samples.shape, audio.sample_rate  # ((N,), 16000), float32, nominally in [-1, 1]

Error tree::

    ValueError
    └── AudioError
        ├── UnsupportedAudio  not audio, or a format other than WAV/FLAC/OGG/MP3
        ├── EmptyAudio        no bytes, or no samples
        ├── AudioTooLong      longer than max_seconds
        └── CorruptAudio      a supported format that cannot be decoded in full (e.g. truncated)
"""

from __future__ import annotations

import dataclasses
import io
import math
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soundfile as sf
from scipy.signal import resample_poly

Seconds = float
FloatArray = npt.NDArray[np.float32]

TARGET_RATE = 16_000
ACCEPTED = "accepted formats: WAV, FLAC, OGG (Vorbis or Opus), MP3"

# libsndfile names -> ours. WAVEX is a WAV with an extensible fmt chunk (24-bit, multichannel).
_ACCEPTED_FORMATS = {"WAV": "WAV", "WAVEX": "WAV", "FLAC": "FLAC", "OGG": "OGG", "MP3": "MP3"}
# libsndfile reports a FLAC stream whose STREAMINFO leaves the length at 0 as SF_COUNT_MAX, and
# then fails on the read that reaches its end, so such streams cannot be decoded in full.
_UNKNOWN_LENGTH = 2**62
# Writers that stream a WAV before knowing its length put a huge placeholder in the data size
# (espeak-ng --stdout: 0x7FFFF000, others 0xFFFFFFFF); no upload is 2 GiB, so such a size means
# "until the end of the file", not "truncated".
_WAV_STREAMING_SIZE = 0x7FFF0000
# MPEG audio frame headers, for counting an MP3's frames (see _walk_mpeg_frames).
_MPEG_BITRATES_KBPS = {  # (MPEG-1?, layer) -> bitrate index 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_SAMPLE_RATES = {
    3: (44_100, 48_000, 32_000),
    2: (22_050, 24_000, 16_000),
    0: (11_025, 12_000, 8_000),
}
# Xing/Info frame, encoder delay and padding: frames counted that a gapless decoder drops.
_MPEG_HIDDEN_FRAMES = 3
_READ_BLOCK_FRAMES = 1 << 18  # read in blocks: a header's claim alone never sizes an allocation
_OGG_END_OF_STREAM = 0x04


class AudioError(ValueError):
    """Audio that cannot be accepted; the message says why and what is accepted."""


class UnsupportedAudio(AudioError):
    """Not audio, or an audio format we do not accept."""


class EmptyAudio(AudioError):
    """No bytes, or a valid file with no samples."""


class AudioTooLong(AudioError):
    """Longer than the configured maximum duration."""

    def __init__(self, duration: Seconds, max_seconds: Seconds) -> None:
        super().__init__(f"audio is {duration:.1f} s long; the limit is {max_seconds:g} s")
        self.duration = duration
        self.max_seconds = max_seconds


class CorruptAudio(AudioError):
    """A supported format whose data cannot be decoded in full (truncated or damaged)."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says about it; ``frames``/``duration`` are the declared length."""

    format: str  # "WAV" | "FLAC" | "OGG" | "MP3"
    subtype: str  # libsndfile subtype, e.g. "PCM_16", "VORBIS", "MPEG_LAYER_III"
    sample_rate: int
    channels: int
    frames: int
    duration: Seconds


@dataclass(frozen=True)
class DecodedAudio:
    """Mono float32 samples at ``sample_rate``; ``source`` has the input's decoded length."""

    samples: FloatArray  # (N,)
    sample_rate: int
    source: AudioInfo

    @property
    def duration(self) -> Seconds:
        return len(self.samples) / self.sample_rate


def probe(data: bytes) -> AudioInfo:
    """Read only the header of ``data``; raise :class:`AudioError` if it is not accepted."""
    if not data:
        raise EmptyAudio(f"audio is empty (0 bytes); {ACCEPTED}")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.SoundFileError, RuntimeError) as err:
        raise _unreadable(data, err) from None
    fmt = _ACCEPTED_FORMATS.get(info.format)
    if fmt is None:
        raise UnsupportedAudio(f"{info.format} audio is not accepted; {ACCEPTED}")
    frames = int(info.frames)
    if frames >= _UNKNOWN_LENGTH:
        raise UnsupportedAudio(
            "this FLAC stream does not declare its length (it was written to a pipe); "
            f"re-encode it to a file; {ACCEPTED}"
        )
    rate = int(info.samplerate)
    if fmt == "WAV":
        frames = _declared_wav_frames(data, frames, rate)
    if fmt == "MP3":
        frames = _mp3_frames(data, frames)
    return AudioInfo(fmt, info.subtype, rate, int(info.channels), frames, frames / rate)


def decode(
    data: bytes, *, target_rate: int = TARGET_RATE, max_seconds: Seconds | None = None
) -> DecodedAudio:
    """Decode ``data`` to mono float32 at ``target_rate``.

    The header's duration is checked against ``max_seconds`` before anything is decoded;
    libsndfile never reads past the declared length, so that check also bounds the work.
    """
    if target_rate <= 0:
        raise ValueError(f"target_rate must be positive, got {target_rate}")
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    info = probe(data)
    if info.frames == 0:
        raise EmptyAudio(f"the {info.format} file contains no samples; {ACCEPTED}")
    if max_seconds is not None and info.duration > max_seconds:
        raise AudioTooLong(info.duration, max_seconds)
    if info.format == "OGG" and not _ogg_ends_cleanly(data):
        raise CorruptAudio("the OGG file is truncated (its last page is missing); upload all of it")

    frames = _read_frames(data, info)  # (T, C)
    _check_complete(info, decoded_frames=len(frames))
    if len(frames) == 0:
        raise EmptyAudio(f"the {info.format} file contains no samples; {ACCEPTED}")
    if not np.isfinite(frames).all():
        raise CorruptAudio(f"the {info.format} file contains NaN or infinite samples")

    mono = frames.mean(axis=1, dtype=np.float32)  # (T,)
    samples = _resample(mono, info.sample_rate, target_rate)
    source = dataclasses.replace(info, frames=len(frames), duration=len(frames) / info.sample_rate)
    return DecodedAudio(samples=samples, sample_rate=target_rate, source=source)


def encode_wav(samples: npt.ArrayLike, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes of ``samples``: (N,) mono or (N, C); values outside [-1, 1] clip."""
    array = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    if array.ndim not in (1, 2):
        raise ValueError(f"samples must be (N,) or (N, channels), got shape {array.shape}")
    buffer = io.BytesIO()
    sf.write(buffer, array, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _read_frames(data: bytes, info: AudioInfo) -> FloatArray:
    """All frames as (T, C) float32; soundfile stops each read at the declared length."""
    blocks: list[FloatArray] = []
    try:
        with sf.SoundFile(io.BytesIO(data)) as stream:
            while True:
                block = stream.read(_READ_BLOCK_FRAMES, dtype="float32", always_2d=True)
                blocks.append(block)
                if len(block) < _READ_BLOCK_FRAMES:
                    break
    except (sf.SoundFileError, RuntimeError) as err:
        reason = getattr(err, "error_string", "decoder error")
        raise CorruptAudio(
            f"the {info.format} data is damaged or truncated ({reason}); upload the complete file"
        ) from None
    return np.concatenate(blocks, axis=0)


def _check_complete(info: AudioInfo, *, decoded_frames: int) -> None:
    """Refuse a file that decodes to much less than its header declares (a cut-off upload)."""
    # Slack for MP3 length estimates and encoder padding; a real truncation loses far more.
    slack = max(info.frames // 100, round(0.05 * info.sample_rate))
    if info.frames - decoded_frames > slack:
        raise CorruptAudio(
            f"the {info.format} file is truncated: its header declares {info.duration:.2f} s but "
            f"only {decoded_frames / info.sample_rate:.2f} s could be decoded; "
            "upload the complete file"
        )


def _resample(samples: FloatArray, rate: int, target_rate: int) -> FloatArray:
    if rate == target_rate:
        return samples
    common = math.gcd(rate, target_rate)
    resampled = resample_poly(samples, target_rate // common, rate // common)
    return np.asarray(resampled, dtype=np.float32)


def _unreadable(data: bytes, err: Exception) -> AudioError:
    """libsndfile could not open ``data``: damaged if it starts like an accepted format."""
    fmt = _sniff_format(data)
    if fmt is None:
        return UnsupportedAudio(f"not a recognised audio file; {ACCEPTED}")
    reason = getattr(err, "error_string", "")
    if not reason or "does not exist" in reason:  # libsndfile's words for a stream it cannot open
        reason = "cannot be opened"
    return CorruptAudio(f"the {fmt} file is damaged or truncated ({reason}); {ACCEPTED}")


def _sniff_format(data: bytes) -> str | None:
    if data[:4] in (b"RIFF", b"RIFX") and data[8:12] == b"WAVE":
        return "WAV"
    if data[:4] == b"fLaC":
        return "FLAC"
    if data[:4] == b"OggS":
        return "OGG"
    if data[:3] == b"ID3" or _starts_with_mpeg_frames(data):
        return "MP3"
    return None


def _starts_with_mpeg_frames(data: bytes) -> bool:
    """An MPEG frame header at the start, and another where that frame ends (unless the data
    stops first): one header alone is 11 set bits, which 1 in 2,048 random uploads have."""
    first = _mpeg_frame(data[:4]) if len(data) >= 4 else None
    if first is None:
        return False
    following = data[first[0] : first[0] + 4]
    return len(following) < 4 or _mpeg_frame(following) is not None


def _declared_wav_frames(data: bytes, available_frames: int, sample_rate: int) -> int:
    """Frames the WAV data chunk declares; libsndfile silently clamps to the bytes present."""
    layout = _wav_data_layout(data)
    if layout is None:
        return available_frames
    declared_bytes, present_bytes, byte_rate = layout
    if declared_bytes >= _WAV_STREAMING_SIZE or declared_bytes <= present_bytes or byte_rate == 0:
        return available_frames
    # The average byte rate is right for compressed subtypes (ADPCM, GSM) as well as PCM.
    return round(declared_bytes / byte_rate * sample_rate)


def _wav_data_layout(data: bytes) -> tuple[int, int, int] | None:
    """(declared size, bytes present) of the RIFF ``data`` chunk and the fmt byte rate."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset, byte_rate = 12, 0
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        if chunk_id == b"fmt " and offset + 20 <= len(data):
            (byte_rate,) = struct.unpack_from("<I", data, offset + 16)
        if chunk_id == b"data":
            return size, len(data) - offset - 8, byte_rate
        offset += 8 + size + (size & 1)  # chunks are padded to an even length
    return None


def _mp3_frames(data: bytes, estimated_frames: int) -> int:
    """The MP3's length in frames, refusing files libsndfile would silently cut short.

    With a Xing/VBRI header libsndfile's count is exact. Without one it guesses from the first
    frame's bitrate and stops reading at the guess, which for a variable-bitrate file can drop
    audio (refused) or overshoot (the counted frames are used instead).
    """
    walk = _walk_mpeg_frames(data)
    if walk is None:
        return estimated_frames
    samples, samples_per_frame, reached_end = walk
    slack = estimated_frames // 50 + _MPEG_HIDDEN_FRAMES * samples_per_frame
    if samples > estimated_frames + slack:
        raise UnsupportedAudio(
            "this variable-bitrate MP3 has no Xing/VBRI header, so its length cannot be read; "
            f"re-encode it with one (LAME and ffmpeg add it by default); {ACCEPTED}"
        )
    if reached_end and samples < estimated_frames - slack:
        return samples
    return estimated_frames


def _walk_mpeg_frames(data: bytes) -> tuple[int, int, bool] | None:
    """(samples per channel, samples per frame, reached the end) over the frames from the start.

    Skips a leading ID3v2 tag and stops at the first bytes that are not a frame header; the
    walk "reached the end" if those are a trailing tag or nothing (a cut-off last frame is not).
    None when no frame can be parsed (e.g. free-format bitrate).
    """
    offset = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        tag_size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]  # syncsafe
        offset = 10 + tag_size + (10 if data[5] & 0x10 else 0)  # footer flag
    samples = samples_per_frame = 0
    while offset + 4 <= len(data):
        frame = _mpeg_frame(data[offset : offset + 4])
        if frame is None:
            break
        length, samples_per_frame = frame
        samples += samples_per_frame
        offset += length
    if samples == 0:
        return None
    reached_end = offset == len(data) or data[offset : offset + 3] in (b"TAG", b"APE", b"LYR")
    return samples, samples_per_frame, reached_end


def _mpeg_frame(header: bytes) -> tuple[int, int] | None:
    """(frame length in bytes, samples per frame) of a 4-byte MPEG audio header, or None."""
    if header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    bitrate_index, rate_index = header[2] >> 4, (header[2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values, or free format whose length the header does not give
    layer, mpeg1 = 4 - layer_bits, version == 3
    bitrates = _MPEG_BITRATES_KBPS[(mpeg1, layer if mpeg1 or layer == 1 else 2)]
    bitrate = bitrates[bitrate_index - 1] * 1000
    rate = _MPEG_SAMPLE_RATES[version][rate_index]
    padding = (header[2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4, 384
    samples_per_frame = 576 if layer == 3 and not mpeg1 else 1152
    return samples_per_frame // 8 * bitrate // rate + padding, samples_per_frame


def _ogg_ends_cleanly(data: bytes) -> bool:
    """True if the Ogg pages run complete to one flagged end-of-stream.

    An Ogg header has no total length, so a cut-off upload just decodes shorter; the missing
    end-of-stream page is the only sign. Bytes after the last page are tolerated.
    """
    offset, last_flags = 0, 0
    while offset + 27 <= len(data) and data[offset : offset + 4] == b"OggS":
        segments = data[offset + 26]
        table_end = offset + 27 + segments
        page_end = table_end + sum(data[offset + 27 : table_end])
        if page_end > len(data):
            return False
        last_flags = data[offset + 5]
        offset = page_end
    return bool(last_flags & _OGG_END_OF_STREAM)
