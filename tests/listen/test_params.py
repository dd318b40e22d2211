"""Query parameters of /v1/listen (pure): every parameter applied, a no-op, a model's or refused."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from deepgram.listen.v1.media.client import MediaClient

from app.engine.registry import NoSuchModel
from app.listen.params import (
    APPLIED,
    MAX_LIST,
    MAX_TAGS,
    MAX_VALUE,
    MODEL_FEATURES,
    REFUSED,
    InvalidListenParameter,
    ListenParams,
    MissingFeatureModel,
    parse_bool,
    parse_listen_params,
    require_feature_models,
)
from asr.inference import KEYTERM_BOOST


def parse(query: str) -> ListenParams:
    """``a=1&b=2`` as Starlette's ``multi_items()`` hands it over (no URL decoding needed)."""
    items = [tuple(pair.split("=", 1)) for pair in query.split("&")] if query else []
    return parse_listen_params([(name, value) for name, value in items])


def refused(query: str) -> str:
    with pytest.raises(InvalidListenParameter) as caught:
        parse(query)
    return caught.value.message


class TestOptOut:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("true", True),
            ("TRUE", True),
            ("True", True),
            ("1", True),
            ("false", False),
            ("FALSE", False),
            ("0", False),
            (" true ", True),
        ],
    )
    def test_accepted_spellings(self, value: str, expected: bool) -> None:
        assert parse(f"mip_opt_out={value}").mip_opt_out is expected

    def test_absent_is_none_so_the_contract_or_default_decides(self) -> None:
        assert parse("").mip_opt_out is None
        assert parse("model=general").mip_opt_out is None

    @pytest.mark.parametrize("value", ["yes", "no", "on", "2", "", "truee", "t", "-1"])
    def test_any_other_value_is_refused_naming_the_parameter(self, value: str) -> None:
        message = refused(f"mip_opt_out={value}")
        assert message == (f"mip_opt_out must be true, false, 1 or 0 (any case), not {value!r}.")

    def test_given_twice_is_refused_even_when_the_values_agree(self) -> None:
        assert refused("mip_opt_out=true&mip_opt_out=true") == (
            "mip_opt_out is given more than once."
        )
        assert refused("mip_opt_out=false&mip_opt_out=true") == (
            "mip_opt_out is given more than once."
        )

    def test_parse_bool_names_whatever_parameter_it_parses(self) -> None:
        assert parse_bool("punctuate", "1") is True
        with pytest.raises(InvalidListenParameter, match=r"^utterances must be"):
            parse_bool("utterances", "maybe")


class TestAppliedParameters:
    def test_model_language_version_are_kept_stripped(self) -> None:
        params = parse("model= general &language=en-US&version=latest")
        assert (params.model, params.language, params.version) == ("general", "en-US", "latest")

    @pytest.mark.parametrize("name", ["model", "language", "version"])
    def test_empty_model_language_or_version_is_refused(self, name: str) -> None:
        assert refused(f"{name}= ") == f"{name} must not be empty."

    @pytest.mark.parametrize("name", ["model", "language", "version", "punctuate", "utt_split"])
    def test_single_valued_parameters_refuse_repeats(self, name: str) -> None:
        value = "0.5" if name == "utt_split" else "true" if name == "punctuate" else "x"
        assert refused(f"{name}={value}&{name}={value}") == f"{name} is given more than once."

    def test_switches_turn_features_on_only_when_true(self) -> None:
        params = parse("punctuate=true&smart_format=0&utterances=1")
        assert (params.punctuate, params.smart_format, params.utterances) == (True, False, True)
        assert params.features == ["punctuate", "utterances"]

    def test_tags_repeat_and_keep_their_order(self) -> None:
        assert parse("tag=b&tag=a&tag= c ").tags == ["b", "a", "c"]

    def test_tags_are_bounded_by_what_the_ledger_keeps(self) -> None:
        assert len(parse("&".join(f"tag=t{i}" for i in range(MAX_TAGS))).tags) == MAX_TAGS
        too_many = "&".join(f"tag=t{i}" for i in range(MAX_TAGS + 1))
        assert refused(too_many) == f"At most {MAX_TAGS} tags per request."
        assert refused("tag=" + "x" * 129) == "tag must be 1 to 128 characters."
        assert refused("tag=") == "tag must be 1 to 128 characters."

    def test_keyterms_are_normalised_and_boosted(self) -> None:
        params = parse("keyterm=Ibu  Profen&keyterm=metformin")
        assert params.boost == {"ibu profen": KEYTERM_BOOST, "metformin": KEYTERM_BOOST}
        assert params.features == ["keyterm"]
        assert params.feature_models == []  # keyterms need no model of their own
        assert refused("keyterm=  ") == "keyterm must not be empty."

    def test_replace_pairs_lower_case_the_word_found(self) -> None:
        params = parse("replace=Um:&replace=colour:color&replace=a:b:c")
        assert params.replace == [("um", ""), ("colour", "color"), ("a", "b:c")]
        assert params.features == ["replace"]
        assert refused("replace=nothing") == "replace must be 'find:replacement'."
        assert refused("replace=:x") == "replace must be 'find:replacement'."

    def test_utt_split_must_be_a_positive_number_of_seconds(self) -> None:
        assert parse("utt_split=1.5").utt_split == 1.5
        assert parse("").utt_split == 0.8
        assert refused("utt_split=soon") == "utt_split must be a number of seconds."
        for bad in ("0", "-1", "61", "nan", "inf"):
            assert refused(f"utt_split={bad}") == "utt_split must be between 0 and 60 seconds."

    def test_extra_pairs(self) -> None:
        assert parse("extra=job:42&extra= team : ops ").extra == {"job": "42", "team": "ops"}
        assert refused("extra=novalue") == "extra must be 'key:value'."
        assert refused("extra=:x") == "extra must be 'key:value'."

    def test_values_over_the_length_limit_are_refused(self) -> None:
        value = "x" * (MAX_VALUE + 1)
        assert refused(f"extra=k:{value}") == f"extra is longer than {MAX_VALUE} characters."
        assert parse(f"extra=k:{'x' * (MAX_VALUE - 2)}").extra["k"] == "x" * (MAX_VALUE - 2)

    def test_list_parameters_are_bounded(self) -> None:
        many = "&".join(f"keyterm=term{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(101))
        assert refused(many) == f"At most {MAX_LIST} keywords/keyterms and extras."
        replaces = "&".join(f"replace=w{i}:x" for i in range(MAX_LIST + 1))
        assert refused(replaces) == f"At most {MAX_LIST} replace per request."


class TestNothingIsIgnored:
    """A parameter that would change nothing is accepted only when it asks for what the
    models do anyway; asking for more is a 400 that names it."""

    @pytest.mark.parametrize("name", ["filler_words", "numerals", "dictation", "measurements"])
    def test_false_is_accepted_and_true_is_refused(self, name: str) -> None:
        assert parse(f"{name}=false") == ListenParams()
        assert refused(f"{name}=true").startswith(f"{name}=true is not supported")

    def test_the_base_tier_is_the_only_one(self) -> None:
        assert parse("tier=base") == parse("tier=BASE") == ListenParams()
        for tier in ("nova", "enhanced", ""):
            with pytest.raises(NoSuchModel):
                parse(f"tier={tier}")

    def test_language_hint_belongs_to_v2(self) -> None:
        assert "/v2/listen" in refused("language_hint=en")


class TestRefusedParameters:
    @pytest.mark.parametrize("name", sorted(REFUSED))
    def test_each_is_refused_with_its_reason(self, name: str) -> None:
        assert refused(f"{name}=true") == REFUSED[name]

    @pytest.mark.parametrize(
        "name", ["multichannel", "profanity_filter", "paragraphs", "detect_entities"]
    )
    def test_a_refused_switch_set_to_false_is_accepted(self, name: str) -> None:
        assert parse(f"{name}=false") == ListenParams()
        assert parse(f"{name}=0") == ListenParams()

    def test_a_refused_switch_still_needs_a_boolean(self) -> None:
        assert refused("multichannel=maybe").startswith("multichannel must be true, false")

    def test_unknown_parameters_are_never_ignored(self) -> None:
        assert refused("modle=general") == "Unknown query parameter 'modle'."
        assert refused("MIP_OPT_OUT=true") == "Unknown query parameter 'MIP_OPT_OUT'."


class TestModelFeatures:
    @pytest.mark.parametrize(
        ("query", "name"),
        [
            ("diarize=true", "diarize"),
            ("diarize_model=latest", "diarize_model"),
            ("detect_language=1", "detect_language"),
            ("sentiment=true", "sentiment"),
            ("intents=true", "intents"),
            ("topics=true", "topics"),
            ("custom_topic=finance", "custom_topic"),
            ("custom_topic_mode=strict", "custom_topic_mode"),
            ("custom_intent=refund", "custom_intent"),
            ("custom_intent_mode=extended", "custom_intent_mode"),
            ("summarize=true", "summarize"),
            ("summarize=v2", "summarize"),  # what the SDK sends
            ("search=refund", "search"),
            ("keywords=metformin", "keywords"),
        ],
    )
    def test_recorded_as_needing_their_model(self, query: str, name: str) -> None:
        params = parse(query)
        assert params.feature_models == [name]
        assert params.features == [name]

    @pytest.mark.parametrize(
        "name", ["diarize", "detect_language", "sentiment", "intents", "topics", "summarize"]
    )
    def test_switches_set_to_false_need_nothing(self, name: str) -> None:
        assert parse(f"{name}=false") == ListenParams()

    def test_a_feature_switch_needs_a_boolean(self) -> None:
        assert (
            refused("diarize=yes") == "diarize must be true, false, 1 or 0 (any case), not 'yes'."
        )
        assert refused("summarize=v3").startswith("summarize must be true, false")

    def test_keywords_carry_an_optional_weight(self) -> None:
        params = parse("keywords=Metformin:5&keywords=ibuprofen&keywords=ratio:1:2&keywords=a:b")
        assert params.boost == {"metformin": 5.0, "ibuprofen": 1.0, "ratio:1": 2.0, "a:b": 1.0}
        assert refused("keywords=:3") == "keywords must be 'term' or 'term:weight'."
        for weight in ("101", "-101", "nan", "inf"):
            assert refused(f"keywords=x:{weight}") == (
                "A keyword weight must be between -100 and 100."
            )

    def test_every_model_feature_names_known_model_kinds(self) -> None:
        kinds = {kind for needed in MODEL_FEATURES.values() for kind in needed}
        assert kinds == {"diarizer", "phoneme", "g2p", "language-detector", "sit", "summarize",
                         "search"}  # fmt: skip


class TestRequireFeatureModels:
    def test_nothing_requested_or_everything_installed_passes(self) -> None:
        require_feature_models([], set())
        require_feature_models(["keywords", "diarize"], {"phoneme", "g2p", "diarizer"})

    def test_one_missing_model_is_named(self) -> None:
        with pytest.raises(MissingFeatureModel) as caught:
            require_feature_models(["diarize_model"], {"sit"})
        assert caught.value.message == (
            "diarize_model requires the 'diarizer' model, which is not installed."
        )
        assert caught.value.status_code == 400

    def test_every_missing_model_of_every_feature_is_named(self) -> None:
        with pytest.raises(MissingFeatureModel) as caught:
            require_feature_models(["keywords", "sentiment", "keywords"], {"g2p"})
        assert caught.value.message == (
            "keywords requires the 'phoneme' model, which is not installed. "
            "sentiment requires the 'sit' model, which is not installed."
        )
        with pytest.raises(MissingFeatureModel, match="'phoneme' and 'g2p' models"):
            require_feature_models(["keywords"], set())


def sdk_parameters() -> list[str]:
    """Every query parameter the official SDK's transcribe_file and transcribe_url can send."""
    names: set[str] = set()
    for method in (MediaClient.transcribe_file, MediaClient.transcribe_url):
        names |= set(inspect.signature(method).parameters)
    return sorted(names - {"self", "request", "request_options", "url"})


class TestTheSDKsParameters:
    """A parameter the SDK can send must be applied, a no-op, a feature model's or refused
    with its reason: never 'Unknown query parameter', which would read as a typo."""

    def test_the_sdk_still_sends_what_these_tests_know(self) -> None:
        assert {"model", "mip_opt_out", "keyterm", "diarize", "callback"} <= set(sdk_parameters())

    @pytest.mark.parametrize("name", sdk_parameters())
    def test_every_one_is_handled(self, name: str) -> None:
        assert name in APPLIED | MODEL_FEATURES.keys() | REFUSED.keys()
        refusal = ""  # a value check or a refusal with its reason is fine
        try:
            parse(f"{name}=true")
        except InvalidListenParameter as err:
            refusal = err.message
        assert not refusal.startswith("Unknown query parameter"), refusal

    def test_every_one_is_in_the_readme_table(self) -> None:
        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
        table = readme[readme.index("**Parameters**") : readme.index("**Load.**")]
        missing = [name for name in sdk_parameters() if f"`{name}" not in table]
        assert missing == []
