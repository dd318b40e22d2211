"""Query parameters of ``POST /v1/listen``, as the official Deepgram SDK sends them.

Every parameter of the SDK's ``transcribe_file`` falls in one of four groups, so none is ever
silently misapplied:

* applied: model, language, version, mip_opt_out, tag, keyterm, keywords, punctuate,
  smart_format, replace, utterances, utt_split, extra;
* accepted when they ask for what the models do anyway, a 400 naming them otherwise:
  ``tier=base`` (every installed model is base tier; another tier is the documented 400 for a
  missing model), ``filler_words``, ``numerals``, ``dictation`` and ``measurements`` when
  false (true is formatting these models do not produce);
* need a model of their own (400 naming it when it is not installed): diarize, diarize_model,
  keywords, detect_language, sentiment, intents, topics, custom_topic(_mode),
  custom_intent(_mode), summarize, search;
* refused with a 400 that says why: callback, callback_method, multichannel, redact,
  profanity_filter, paragraphs, detect_entities, encoding, sample_rate, channels,
  language_hint (a /v2 parameter).

Anything else is an unknown parameter (400), never ignored.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from app.engine.registry import NoSuchModel
from app.kit.errors import BadRequest
from app.kit.text import check_storable
from asr.inference import KEYTERM_BOOST


class InvalidListenParameter(BadRequest):
    """A /v1/listen query parameter with a bad value, an unknown name or an unsupported use."""


class MissingFeatureModel(BadRequest):
    """A requested feature whose model (diarizer, sit, …) is not installed."""


_TRUE = {"true", "1"}
_FALSE = {"false", "0"}

# The tier of every installed model: ``tier=base`` asks for what is served anyway.
SERVED_TIER = "base"
# Feature -> the feature models it needs (Deepgram self-hosted names).
MODEL_FEATURES: dict[str, tuple[str, ...]] = {
    "diarize": ("diarizer",),
    "diarize_model": ("diarizer",),
    "keywords": ("phoneme", "g2p"),
    "detect_language": ("language-detector",),
    "sentiment": ("sit",),
    "intents": ("sit",),
    "topics": ("sit",),
    "custom_topic": ("sit",),
    "custom_topic_mode": ("sit",),
    "custom_intent": ("sit",),
    "custom_intent_mode": ("sit",),
    "summarize": ("summarize",),
    "search": ("search",),
}
REFUSED: dict[str, str] = {
    "callback": "Callbacks are not offered: send the request synchronously.",
    "callback_method": "Callbacks are not offered: send the request synchronously.",
    "multichannel": "multichannel is not supported: channels are mixed to mono.",
    "redact": "redact is not supported: this service cannot remove sensitive entities.",
    "profanity_filter": "profanity_filter is not supported by these models.",
    "paragraphs": "paragraphs is not supported.",
    "detect_entities": "detect_entities is not supported.",
    "encoding": "Raw encodings are not supported: send WAV, FLAC, OGG or MP3 with a header.",
    "sample_rate": "Raw encodings are not supported: send WAV, FLAC, OGG or MP3 with a header.",
    "channels": "Raw encodings are not supported: send WAV, FLAC, OGG or MP3 with a header.",
    "filler_words": (
        "filler_words=true is not supported: these models do not transcribe filler words."
    ),
    "numerals": "numerals=true is not supported: these models write numbers as words.",
    "dictation": "dictation=true is not supported: spoken punctuation is not converted.",
    "measurements": (
        "measurements=true is not supported: spoken measurements are not abbreviated."
    ),
    "language_hint": "language_hint is a /v2/listen parameter; /v1/listen takes language.",
}
# Boolean switches that only matter when true (false is always accepted).
_SWITCHES = frozenset(
    {
        "diarize",
        "detect_language",
        "sentiment",
        "intents",
        "topics",
        "multichannel",
        "profanity_filter",
        "paragraphs",
        "detect_entities",
        "summarize",
        "filler_words",
        "numerals",
        "dictation",
        "measurements",
    }
)
APPLIED = frozenset(  # parameters that change what the request does
    {
        "model",
        "language",
        "version",
        "mip_opt_out",
        "tag",
        "keyterm",
        "keywords",
        "punctuate",
        "smart_format",
        "replace",
        "utterances",
        "utt_split",
        "extra",
        "tier",
    }
)
_SINGLE = frozenset(
    {
        "model",
        "language",
        "version",
        "mip_opt_out",
        "punctuate",
        "smart_format",
        "utterances",
        "utt_split",
        *_SWITCHES,
    }
)
MAX_LIST = 100  # keywords, keyterms, replacements, extras per request
MAX_TAGS = 64  # the ledger keeps at most 64 tags per request
MAX_VALUE = 256


@dataclass
class ListenParams:
    model: str | None = None
    language: str | None = None
    version: str | None = None
    mip_opt_out: bool | None = None
    tags: list[str] = field(default_factory=list)
    boost: dict[str, float] = field(default_factory=dict)  # keywords and keyterms
    punctuate: bool = False
    smart_format: bool = False
    replace: list[tuple[str, str]] = field(default_factory=list)
    utterances: bool = False
    utt_split: float = 0.8
    extra: dict[str, str] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)  # requested features (for the ledger)
    feature_models: list[str] = field(default_factory=list)  # features that need a model


def parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidListenParameter(f"{name} must be true, false, 1 or 0 (any case), not {value!r}.")


def _switched_on(name: str, value: str) -> bool:
    # The SDK sends summarize=v2 (the summarizer's version) to switch summaries on.
    if name == "summarize" and value.strip().lower() == "v2":
        return True
    return parse_bool(name, value)


def require_feature_models(requested: Sequence[str], installed: Collection[str]) -> None:
    """Raise :class:`MissingFeatureModel` naming each requested parameter whose models are
    not all installed (``installed``: the feature-model kinds the model directory serves)."""
    problems: list[str] = []
    for name in dict.fromkeys(requested):
        missing = [kind for kind in MODEL_FEATURES[name] if kind not in installed]
        if len(missing) == 1:
            problems.append(f"{name} requires the '{missing[0]}' model, which is not installed.")
        elif missing:
            kinds = " and ".join(f"'{kind}'" for kind in missing)
            problems.append(f"{name} requires the {kinds} models, which are not installed.")
    if problems:
        raise MissingFeatureModel(" ".join(problems))


def parse_listen_params(items: Sequence[tuple[str, str]]) -> ListenParams:
    """Validate every query parameter; the first problem raises with the parameter's name."""
    params = ListenParams()
    seen: set[str] = set()
    for name, value in items:
        check_storable("A query parameter's name", name)
        check_storable(f"Query parameter {name}", value)
        if len(value) > MAX_VALUE:
            raise InvalidListenParameter(f"{name} is longer than {MAX_VALUE} characters.")
        if name in _SINGLE and name in seen:
            raise InvalidListenParameter(f"{name} is given more than once.")
        seen.add(name)
        _apply(params, name, value)
    if len(params.tags) > MAX_TAGS:
        raise InvalidListenParameter(f"At most {MAX_TAGS} tags per request.")
    if len(params.replace) > MAX_LIST:
        raise InvalidListenParameter(f"At most {MAX_LIST} replace per request.")
    if len(params.boost) > MAX_LIST or len(params.extra) > MAX_LIST:
        raise InvalidListenParameter(f"At most {MAX_LIST} keywords/keyterms and extras.")
    params.features = sorted(set(params.features))
    params.feature_models = sorted(set(params.feature_models))
    return params


def _apply(params: ListenParams, name: str, value: str) -> None:
    if name in REFUSED:
        if name in _SWITCHES and not _switched_on(name, value):
            return
        raise InvalidListenParameter(REFUSED[name])
    if name in MODEL_FEATURES:
        if name in _SWITCHES and not _switched_on(name, value):
            return
        if name == "keywords":
            term, weight = _keyword(value)
            params.boost[term] = weight
        params.features.append(name)
        params.feature_models.append(name)
        return
    if name not in APPLIED:
        raise InvalidListenParameter(f"Unknown query parameter '{name}'.")
    if name in {"model", "language", "version"}:
        if not value.strip():
            raise InvalidListenParameter(f"{name} must not be empty.")
        setattr(params, name, value.strip())
    elif name == "tier":
        if value.strip().lower() != SERVED_TIER:
            raise NoSuchModel()  # the provider's answer for a tier it does not serve
    elif name == "mip_opt_out":
        params.mip_opt_out = parse_bool(name, value)
    elif name in {"punctuate", "smart_format", "utterances"}:
        setattr(params, name, parse_bool(name, value))
        if getattr(params, name):
            params.features.append(name)
    elif name == "tag":
        if not value.strip() or len(value) > 128:
            raise InvalidListenParameter("tag must be 1 to 128 characters.")
        params.tags.append(value.strip())
    elif name == "keyterm":
        term = " ".join(value.lower().split())
        if not term:
            raise InvalidListenParameter("keyterm must not be empty.")
        params.boost[term] = KEYTERM_BOOST
        params.features.append("keyterm")
    elif name == "replace":
        find, sep, replacement = value.partition(":")
        if not sep or not find.strip():
            raise InvalidListenParameter("replace must be 'find:replacement'.")
        params.replace.append((find.strip().lower(), replacement.strip()))
        params.features.append("replace")
    elif name == "utt_split":
        try:
            seconds = float(value)
        except ValueError:
            raise InvalidListenParameter("utt_split must be a number of seconds.") from None
        if not math.isfinite(seconds) or not 0.0 < seconds <= 60.0:
            raise InvalidListenParameter("utt_split must be between 0 and 60 seconds.")
        params.utt_split = seconds
    elif name == "extra":
        key, sep, extra_value = value.partition(":")
        if not sep or not key.strip():
            raise InvalidListenParameter("extra must be 'key:value'.")
        params.extra[key.strip()] = extra_value.strip()


def _keyword(value: str) -> tuple[str, float]:
    """``term`` or ``term:weight`` (Deepgram's keywords syntax; weight defaults to 1)."""
    term, sep, raw_weight = value.rpartition(":")
    if not sep:
        term, raw_weight = value, "1"
    try:
        weight = float(raw_weight)
    except ValueError:
        term, weight = value, 1.0
    term = " ".join(term.lower().split())
    if not term:
        raise InvalidListenParameter("keywords must be 'term' or 'term:weight'.")
    if not math.isfinite(weight) or abs(weight) > 100:
        raise InvalidListenParameter("A keyword weight must be between -100 and 100.")
    return term, weight
