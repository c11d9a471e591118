"""Configuration: environment overrides and the secret key."""

from __future__ import annotations

import stat

from biobank import config


def test_environment_variables_override_the_defaults():
    """BIOBANK_* variables are read and typed."""
    found = config.from_environment(
        {
            "BIOBANK_BARCODE_DIGITS": "9",
            "BIOBANK_SQL_ECHO": "yes",
            "BIOBANK_BARCODE_PREFIX": "XB",
            "OTHER": "x",
        }
    )
    assert found == {"BARCODE_DIGITS": 9, "SQL_ECHO": True, "BARCODE_PREFIX": "XB"}


def test_without_a_configured_key_one_is_made_once_and_kept_private(tmp_path):
    """The instance key is created on first use, readable only by its owner, then reused."""
    first = config.instance_secret(str(tmp_path))
    assert len(first) == 64
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    assert config.instance_secret(str(tmp_path)) == first
