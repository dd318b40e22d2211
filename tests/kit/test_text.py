"""The rules of app/kit/text.py on their own: numbers in ASCII digits, storable text."""

from __future__ import annotations

import pytest

from app.kit.text import (
    UnstorableText,
    ascii_number,
    check_storable,
    json_unstorable_reason,
)


class TestAsciiNumber:
    @pytest.mark.parametrize(("text", "number"), [("0", 0), ("42", 42), ("9" * 18, 10**18 - 1)])
    def test_ascii_digits_are_read(self, text: str, number: int) -> None:
        assert ascii_number(text) == number

    @pytest.mark.parametrize("text", ["", "²", "٣", "-1", "+1", " 1", "1.0", "1_0", "9" * 19])
    def test_anything_else_is_none(self, text: str) -> None:
        assert ascii_number(text) is None


class TestStorable:
    def test_text_comes_back_unchanged(self) -> None:
        assert check_storable("name", "Zoë 😀") == "Zoë 😀"

    @pytest.mark.parametrize(
        ("text", "reason"), [("a\x00", "a NUL character"), ("\ud83d", "an unpaired UTF-16")]
    )
    def test_nul_and_lone_surrogates_are_refused(self, text: str, reason: str) -> None:
        with pytest.raises(UnstorableText, match=f"tag contains {reason}"):
            check_storable("tag", text)

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (rb'{"a": "x"}', None),
            (rb'{"a": "\u0000"}', "a NUL character"),
            (rb'{"a": "\\u0000"}', None),  # an escaped backslash, then the text u0000
            (rb'{"a": "\\\u0000"}', "a NUL character"),
            (rb'{"a": "\ud83d\ude00"}', None),
            (rb'{"a": "\ud83d"}', "an unpaired UTF-16 surrogate"),
            (rb'{"a": "\ude00\ud83d"}', "an unpaired UTF-16 surrogate"),
            (rb'{"\u0000": 1}', "a NUL character"),
        ],
    )
    def test_json_escapes_are_read_without_parsing(self, body: bytes, reason: str | None) -> None:
        assert json_unstorable_reason(body) == reason
