"""Function and master keys for HTTP authLevel checks."""

import json
import stat
from pathlib import Path

import pytest
from azure.functions import AuthLevel

from devstack.host.keys import HostKeys, KeysFileError

KEYS = HostKeys(master_key="master", function_keys={"default": "fn", "ci": "other"})


def test_a_missing_keys_file_is_created_with_random_private_keys(tmp_path: Path) -> None:
    # Given no keys file
    path = tmp_path / "sub" / "keys.json"
    # When keys are loaded
    keys = HostKeys.load_or_create(path)
    # Then the file exists, is private, and holds the same random keys next time
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert HostKeys.load_or_create(path) == keys
    assert len(keys.master_key) >= 40
    assert keys.default_function_key != keys.master_key


def test_an_existing_keys_file_is_read_as_given(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"masterKey": "m", "functionKeys": {"default": "d"}}))
    assert HostKeys.load_or_create(path) == HostKeys("m", {"default": "d"})


@pytest.mark.parametrize(
    "document", ["[]", "{}", '{"masterKey": ""}', '{"masterKey": "m", "functionKeys": {"a": 1}}', "not json"]
)
def test_a_malformed_keys_file_is_refused(document: str) -> None:
    with pytest.raises(KeysFileError):
        HostKeys.parse(document)


@pytest.mark.parametrize(
    ("level", "presented", "allowed"),
    [
        (AuthLevel.ANONYMOUS, None, True),
        (AuthLevel.FUNCTION, None, False),
        (AuthLevel.FUNCTION, "wrong", False),
        (AuthLevel.FUNCTION, "fn", True),
        (AuthLevel.FUNCTION, "other", True),
        (AuthLevel.FUNCTION, "master", True),
        (AuthLevel.ADMIN, "fn", False),
        (AuthLevel.ADMIN, "master", True),
    ],
)
def test_each_auth_level_accepts_exactly_its_keys(level: AuthLevel, presented: str | None, allowed: bool) -> None:
    assert KEYS.allows(level, presented) is allowed


def test_the_default_function_key_is_the_one_named_default() -> None:
    assert KEYS.default_function_key == "fn"
    assert HostKeys("m", {"x": "y"}).default_function_key == "y"
