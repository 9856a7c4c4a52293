"""Every environment variable: declared once, documented, a bad value named."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_every_setting_is_documented() -> None:
    """docs/profiles.md lists every variable Settings reads (it cannot drift)."""
    from feature_platform.settings import variables

    page = (Path(__file__).resolve().parents[2] / "docs" / "profiles.md").read_text()
    missing = [var for var in variables() if f"`{var}`" not in page]
    assert missing == []


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("FEATURE_PLATFORM_OFFLINE", "parquet", "'file', 'bigquery' or 'spark'"),
        ("FEATURE_PLATFORM_LOCK_TIMEOUT", "-1", "greater than or equal to 0"),
        ("FEATURE_PLATFORM_REGISTRY_LOCK", "maybe", "valid boolean"),
        ("FP_SERVER_PORT", "http", "valid integer"),
        ("FP_SERVER_PORT", "0", "greater than 0"),
    ],
)
def test_bad_settings_name_the_variable(
    var: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feature_platform.errors import ConfigError
    from feature_platform.settings import settings

    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=var) as info:
        settings()
    assert message in str(info.value)
