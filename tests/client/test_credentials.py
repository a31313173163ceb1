"""Keys from the credentials file and the environment; never shown in full."""

import os
import stat

import pytest

from support.pack import pack_module

creds = pack_module("client.credentials")
errors = pack_module("client.errors")
redact = pack_module("client.redact")

KEY_A = "aaaaaaaaaaaaaaaaaaaaaaaaaaaa1111"
KEY_B = "bbbbbbbbbbbbbbbbbbbbbbbbbbbb2222"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("RUNNINGHUB_API_KEY", "RUNNINGHUB_SITE", "RUNNINGHUB_BASE_URL", "RUNNINGHUB_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_api_key_repr_and_str_are_redacted():
    key = creds.ApiKey(KEY_A)
    assert KEY_A not in repr(key) and KEY_A not in str(key) and KEY_A not in f"{key}"
    assert key.hint == "…1111" and key.secret == KEY_A
    account = creds.Account("default", pack_module("client.sites").resolve_site("cn"), (key,), "test")
    assert KEY_A not in repr(account) and KEY_A not in account.describe()


def test_store_writes_mode_0600_and_resolves_profiles(tmp_path):
    store = creds.CredentialsStore(tmp_path / "rh" / "credentials.json")
    store.set_profile("default", site="ai", keys=[KEY_A])
    store.set_profile("default", add_keys=[KEY_B, KEY_A])
    mode = stat.S_IMODE(os.stat(store.path).st_mode)
    assert mode == 0o600
    account = creds.resolve_account("default", store)
    assert [k.secret for k in account.keys] == [KEY_A, KEY_B]
    assert account.site.name == "ai" and account.site.host == "www.runninghub.ai"
    summary = store.summary()
    assert summary == {"default": {"site": "ai", "base_url": None, "keys": ["…1111", "…2222"]}}
    assert KEY_A not in str(summary)
    store.set_profile("default", remove_key_hints=["…1111"])
    assert [k.secret for k in creds.resolve_account("default", store).keys] == [KEY_B]
    assert store.delete_profile("default") and not store.delete_profile("default")


def test_environment_pool_and_site(monkeypatch):
    monkeypatch.setenv("RUNNINGHUB_API_KEY", f"{KEY_A}, {KEY_B}")
    monkeypatch.setenv("RUNNINGHUB_SITE", "ai")
    account = creds.resolve_account("default", None)
    assert len(account.keys) == 2 and account.site.name == "ai"
    monkeypatch.setenv("RUNNINGHUB_BASE_URL", "http://127.0.0.1:9/")
    account = creds.resolve_account("default", None)
    assert account.site.name == "custom" and account.site.base_url == "http://127.0.0.1:9"


def test_file_profile_wins_over_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNNINGHUB_API_KEY", KEY_B)
    store = creds.CredentialsStore(tmp_path / "c.json")
    store.set_profile("default", keys=[KEY_A])
    assert creds.resolve_account(None, store).keys[0].secret == KEY_A


def test_missing_key_says_how_to_add_one(tmp_path):
    store = creds.CredentialsStore(tmp_path / "c.json")
    with pytest.raises(errors.CredentialsError, match="RUNNINGHUB_API_KEY"):
        creds.resolve_account("default", store)
    with pytest.raises(errors.CredentialsError, match="profile 'work' does not exist"):
        creds.resolve_account("work", store)


def test_corrupt_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(errors.CredentialsError, match="not valid JSON"):
        creds.CredentialsStore(path).profiles()


def test_bad_profile_names_and_keys_are_refused(tmp_path):
    store = creds.CredentialsStore(tmp_path / "c.json")
    with pytest.raises(errors.CredentialsError):
        store.set_profile("../etc", keys=[KEY_A])
    with pytest.raises(errors.CredentialsError):
        store.set_profile("ok", keys=["has space"])
    with pytest.raises(ValueError):
        store.set_profile("ok", site="mars", keys=[KEY_A])


def test_scrub_hides_known_keys_and_key_shaped_text():
    text = f"error for {KEY_A} and also deadbeefdeadbeefdeadbeefdeadbeef"
    out = redact.scrub(text, [KEY_A])
    assert KEY_A not in out and "deadbeefdeadbeefdeadbeefdeadbeef" not in out
    assert "…1111" in out and "…beef" in out
