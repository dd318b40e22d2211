"""USD strings to micro-dollars and back: exact, strict, never a crash."""

from __future__ import annotations

import pytest

from app.kit.money import InvalidAmount, micros_to_usd, usd_to_micros


class TestUsdToMicros:
    @pytest.mark.parametrize(
        ("text", "micros"),
        [
            ("0.0043", 4300),
            ("1", 1_000_000),
            ("0.000001", 1),
            (".5", 500_000),
            ("12.", 12_000_000),
            ("0.00430000000", 4300),
            (" 2.50 ", 2_500_000),
            ("999999999999.999999", 999_999_999_999_999_999),
        ],
    )
    def test_exact(self, text: str, micros: int) -> None:
        assert usd_to_micros(text) == micros

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "abc",
            "-1",
            "+1",
            "1e3",
            "1e999999999",
            "sNaN",
            "NaN",
            "Infinity",
            "0.0000001",
            "1,5",
            "1 000",
            "1234567890123",
            "0x10",
        ],
    )
    def test_refused_with_a_clear_400(self, text: str) -> None:
        with pytest.raises(InvalidAmount, match="not a USD amount") as info:
            usd_to_micros(text)
        assert info.value.status_code == 400


class TestMicrosToUsd:
    @pytest.mark.parametrize(
        ("micros", "text"), [(4300, "0.004300"), (0, "0.000000"), (-1_500_000, "-1.500000")]
    )
    def test_six_places(self, micros: int, text: str) -> None:
        assert micros_to_usd(micros) == text

    def test_round_trip(self) -> None:
        for micros in (0, 1, 4300, 10**15):
            assert usd_to_micros(micros_to_usd(micros)) == micros
