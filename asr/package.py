"""Model packages: one ``.dg`` file per model, a plain tar with a manifest and checksums.

    path = write_package(out_dir, manifest, model_config=cfg, feature_config=fcfg,
                         tokenizer=tok, state_dict=model.state_dict())
    package = read_package(path)  # verified: checksums, config, weights load into CTCModel

Members, always in this order (the manifest first, so listing a directory reads one header)::

    manifest.json      PackageManifest: identity, languages, metrics, sha256 of every other member
    config.json        {"model": ModelConfig.to_dict(), "features": FeatureConfig.to_dict(),
                        optional "decoding": the decoder settings tuned for this model, and
                        optionally its vocabulary: "vocabulary": [{"term": "metformin",
                        "sounds_like": ["met form in"], "weight": 1.0}, ...] (asr.vocabulary)}
    tokenizer.json     CharTokenizer.to_dict()
    lm.json            optional language model, an opaque JSON object (asr.lm owns its format)
    model.safetensors  the state dict (safetensors: no pickle, so loading runs no code)

The same inputs give the same bytes: tar headers carry a fixed mtime, owner and mode.

File names, two styles that name the same model::

    standard  {architecture}-{domain}.{language}.{formatted|non-formatted}.{batch|streaming}.{id}.dg
              ctcconv-general.en.non-formatted.batch.6f1c2a9e.dg   (id: first 8 hex of the uuid)
    legacy    {version}-{domain}-{architecture}.dg
              2026-11-21.1-general-ctcconv.dg
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from asr.features import FeatureConfig

# Re-exported: a package's identity lives in asr.manifest (no torch), and callers that read
# whole packages find it here too.
from asr.manifest import ASR_KIND as ASR_KIND
from asr.manifest import CONFIG as CONFIG
from asr.manifest import FEATURE_KINDS as FEATURE_KINDS
from asr.manifest import FORMAT as FORMAT
from asr.manifest import KINDS as KINDS
from asr.manifest import LM as LM
from asr.manifest import MANIFEST as MANIFEST
from asr.manifest import MAX_MEMBER_BYTES as MAX_MEMBER_BYTES
from asr.manifest import MEMBER_ORDER as MEMBER_ORDER
from asr.manifest import MODES as MODES
from asr.manifest import REQUIRED_MEMBERS as REQUIRED_MEMBERS
from asr.manifest import TOKENIZER as TOKENIZER
from asr.manifest import WEIGHTS as WEIGHTS
from asr.manifest import PackageError as PackageError
from asr.manifest import PackageManifest as PackageManifest
from asr.manifest import ParsedName as ParsedName
from asr.manifest import filename_matches as filename_matches
from asr.manifest import new_manifest as new_manifest
from asr.manifest import package_filename as package_filename
from asr.manifest import parse_json as _parse_json
from asr.manifest import parse_manifest as _parse_manifest
from asr.manifest import parse_package_filename as parse_package_filename
from asr.manifest import read_manifest as read_manifest
from asr.manifest import read_member as _read_member
from asr.model import CTCModel, ModelConfig
from asr.tokenizer import CharTokenizer
from asr.vocabulary import Vocabulary
from durable import atomic_path

_TAR_MTIME = 0
_TAR_MODE = 0o644

# --- writing ---


@dataclass(eq=False)  # holds tensors: compared by identity
class ModelPackage:
    manifest: PackageManifest
    model_config: ModelConfig
    feature_config: FeatureConfig
    tokenizer: CharTokenizer
    state_dict: dict[str, torch.Tensor]
    lm: dict[str, Any] | None = None
    path: Path | None = None
    # asr.inference.DecodeOptions fields; "vocabulary" as Vocabulary.to_dicts() rows
    decoding: dict[str, Any] | None = None

    def build_model(self) -> CTCModel:
        """A ``CTCModel`` with these weights, in eval mode (for kind "asr")."""
        model = CTCModel(self.model_config)
        model.load_state_dict(self.state_dict, strict=True)
        return model.eval()


_DECODING_TYPES: dict[str, tuple[type, ...]] = {
    "decoder": (str,),
    "beam_width": (int,),
    "lm_weight": (int, float),
    "word_bonus": (int, float),
    "snap": (bool,),
    "oov_penalty": (int, float),
    "vocabulary": (list,),
}


def check_decoding(decoding: Any, tokenizer: CharTokenizer | None = None) -> dict[str, Any]:
    """The decoder settings of a package: known fields with the right types, or ValueError.

    A ``vocabulary`` is parsed (asr.vocabulary.Vocabulary.parse) and given back in its
    canonical form (whitespace squeezed, every field present); with ``tokenizer`` every term
    must be spellable by it (``Vocabulary.check_spellable``)."""
    if not isinstance(decoding, dict):
        raise ValueError("decoding must be a JSON object")
    unknown = set(decoding) - set(_DECODING_TYPES)
    if unknown:
        raise ValueError(f"unknown decoding fields: {', '.join(sorted(unknown))}")
    for name, value in decoding.items():
        if isinstance(value, bool) and bool not in _DECODING_TYPES[name]:
            raise ValueError(f"decoding.{name} has the wrong type")
        if not isinstance(value, _DECODING_TYPES[name]):
            raise ValueError(f"decoding.{name} has the wrong type")
    if decoding.get("decoder", "beam") not in {"greedy", "beam"}:
        raise ValueError("decoding.decoder must be 'greedy' or 'beam'")
    penalty = decoding.get("oov_penalty", 0.0)
    if not (math.isfinite(penalty) and penalty >= 0):
        raise ValueError("decoding.oov_penalty must be a finite number, 0 or more")
    checked = dict(decoding)
    if "vocabulary" in decoding:
        try:  # VocabularyError: "vocabulary[3]: weight must be ..."
            vocabulary = Vocabulary.parse(decoding["vocabulary"])
            if tokenizer is not None:
                vocabulary.check_spellable(tokenizer)
        except ValueError as err:
            raise ValueError(f"decoding.{err}") from None
        checked["vocabulary"] = vocabulary.to_dicts()
    return checked


def write_package(
    out_dir: Path,
    manifest: PackageManifest,
    *,
    model_config: ModelConfig,
    feature_config: FeatureConfig,
    tokenizer: CharTokenizer,
    state_dict: dict[str, torch.Tensor],
    lm: dict[str, Any] | None = None,
    filename_style: Literal["standard", "legacy"] = "standard",
    decoding: dict[str, Any] | None = None,
) -> Path:
    """Write ``out_dir / package_filename(manifest)`` atomically and return its path.

    ``manifest.files`` is replaced by the checksums of what is written. For kind "asr" the
    weights must load into ``CTCModel(model_config)``: an unreadable package is never written.
    """
    manifest.validate()
    target = Path(out_dir) / package_filename(manifest, filename_style)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    package = ModelPackage(manifest, model_config, feature_config, tokenizer, tensors, lm)
    try:
        _check_consistent(package)
    except PackageError as err:
        raise PackageError(target, err.reason) from None
    if lm is not None and not isinstance(lm, dict):
        raise PackageError(target, "lm must be a JSON object")

    config: dict[str, Any] = {
        "model": model_config.to_dict(),
        "features": feature_config.to_dict(),
    }
    if decoding is not None:
        try:
            config["decoding"] = check_decoding(decoding, tokenizer)
        except ValueError as err:
            raise PackageError(target, str(err)) from None
    members = {CONFIG: _json_bytes(config), TOKENIZER: _json_bytes(tokenizer.to_dict())}
    if lm is not None:
        members[LM] = _json_bytes(lm)
    members[WEIGHTS] = save_safetensors(tensors)
    files = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
    members[MANIFEST] = _json_bytes(replace(manifest, files=files).to_dict())

    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file's dot-name has no ".dg": a directory scan never sees it half-written.
    # 0644: a package is not secret, and the service may run as another user.
    with atomic_path(target, mode=0o644) as partial, open(partial, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name in MEMBER_ORDER:
                if name in members:
                    tar.addfile(_tar_info(name, len(members[name])), io.BytesIO(members[name]))
    return target


def _json_bytes(data: object) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = _TAR_MTIME
    info.mode = _TAR_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _check_consistent(package: ModelPackage) -> None:
    """Sizes agree between config, features and tokenizer; asr weights fit the model."""
    if package.manifest.kind != ASR_KIND:
        return
    cfg = package.model_config
    if package.tokenizer.vocab_size != cfg.vocab_size:
        raise PackageError(
            None,
            f"tokenizer has {package.tokenizer.vocab_size} symbols but the model "
            f"outputs {cfg.vocab_size}",
        )
    if package.feature_config.n_mels != cfg.n_mels:
        raise PackageError(
            None,
            f"features have {package.feature_config.n_mels} mel bands but the model "
            f"expects {cfg.n_mels}",
        )
    try:
        package.build_model()
    except RuntimeError as err:
        # load_state_dict names the missing, unexpected or mis-shaped tensors.
        first = str(err).strip().splitlines()
        raise PackageError(
            None, f"weights do not fit the model config: {' '.join(first)}"
        ) from None


# --- reading ---


def read_package(path: Path) -> ModelPackage:
    """Read and verify a package: members, checksums, manifest, config, tokenizer, weights."""
    path = Path(path)
    members = _read_members(path)
    missing = sorted(REQUIRED_MEMBERS - set(members))
    if missing:
        raise PackageError(path, f"missing member(s): {', '.join(missing)}")
    manifest = _parse_manifest(members[MANIFEST], path)

    listed, present = set(manifest.files), set(members) - {MANIFEST}
    if listed != present:
        raise PackageError(
            path,
            f"manifest lists {sorted(listed)} but the package holds {sorted(present)}",
        )
    for name in sorted(present):
        if hashlib.sha256(members[name]).hexdigest() != manifest.files[name]:
            raise PackageError(path, f"checksum mismatch for {name}")

    config = _parse_json(members[CONFIG], CONFIG, path)
    tokenizer_data = _parse_json(members[TOKENIZER], TOKENIZER, path)
    lm = _parse_json(members[LM], LM, path) if LM in members else None
    try:
        if not {"model", "features"} <= set(config) <= {"model", "features", "decoding"}:
            raise ValueError("config.json holds 'model', 'features' and optionally 'decoding'")
        model_config = ModelConfig.from_dict(config["model"])
        feature_config = FeatureConfig(**config["features"])
        tokenizer = CharTokenizer.from_dict(tokenizer_data)
        decoding = check_decoding(config["decoding"], tokenizer) if "decoding" in config else None
    except (ValueError, TypeError) as err:
        raise PackageError(path, f"bad config or tokenizer: {err}") from None
    try:
        state_dict = load_safetensors(members[WEIGHTS])
    except (SafetensorError, ValueError) as err:
        raise PackageError(path, f"{WEIGHTS} is not a safetensors file: {err}") from None

    package = ModelPackage(
        manifest, model_config, feature_config, tokenizer, state_dict, lm, path, decoding
    )
    try:
        _check_consistent(package)
    except PackageError as err:
        raise PackageError(path, err.reason) from None
    return package


def _read_members(path: Path) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                name = info.name
                if name.startswith("/") or ".." in Path(name).parts or "/" in name:
                    raise PackageError(path, f"unsafe member path {name!r}")
                if not info.isreg():
                    raise PackageError(path, f"member {name!r} is not a regular file")
                if name not in MAX_MEMBER_BYTES:
                    raise PackageError(path, f"unexpected member {name!r}")
                if name in members:
                    raise PackageError(path, f"duplicate member {name!r}")
                members[name] = _read_member(tar, info, path)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise PackageError(path, f"not a readable package (corrupt tar): {err}") from None
    return members
