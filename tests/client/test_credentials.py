"""Keys from the credentials file and the environment; never shown in full."""

import json
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
    for name in ("RUNNINGHUB_API_KEY", "RUNNINGHUB_SITE", "RUNNINGHUB_BASE_URL", "RUNNINGHUB_CREDENTIALS_FILE",
                 "RUNNINGHUB_ALLOWED_BASE_URLS"):
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
    store.set_profile("default", remove_key_ids=[creds.key_id("default", KEY_A)])
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


def test_scrub_follows_the_key_a_shared_run_belongs_to():
    """Two known keys share a run (here 27 characters): the run is followed along the key the
    text matches longest, so no tail of the key in the text stays visible (it used to follow
    whichever key was known first and leave up to 7 characters of the other)."""
    first, second = "e" * 32, "e" * 27 + "7c3d5"
    redact.remember_secret(first)
    out = redact.scrub(f"echo: {second}.", [second])
    assert out == "echo: …c3d5."


# --------------------------------------------------------------------------- issue 8


def test_keys_are_addressed_by_an_opaque_id_that_no_part_of_the_key_selects(tmp_path):
    store = creds.CredentialsStore(tmp_path / "c.json")
    twin = "cccccccccccccccccccccccccccc1111"  # same last four as KEY_A
    store.set_profile("p", keys=[KEY_A, twin])
    id_a = creds.key_id("p", KEY_A)
    assert id_a != creds.key_id("p", twin) and id_a != creds.key_id("q", KEY_A)
    assert KEY_A[-4:] not in id_a[1:] or len(set(id_a)) > 4  # not derived visibly from the key
    assert store.set_profile("p", remove_key_ids=["…1111", "1111"]) == ["…1111", "1111"]  # hints select nothing
    assert store.profiles()["p"]["keys"] == [KEY_A, twin]
    assert store.set_profile("p", remove_key_ids=[id_a]) == []
    assert store.profiles()["p"]["keys"] == [twin]


def test_max_keys_counts_the_stored_pool_and_every_key_sent(tmp_path):
    store = creds.CredentialsStore(tmp_path / "c.json")
    many = [f"{i:032x}" for i in range(creds.MAX_KEYS)]
    for start in range(0, creds.MAX_KEYS, 10):
        store.set_profile("p", add_keys=many[start:start + 10])
    assert len(store.profiles()["p"]["keys"]) == creds.MAX_KEYS
    for extra in ([f"{10 ** 6:032x}"], [many[0]]):  # a new key, or one already there: the same answer
        with pytest.raises(errors.ProfileChangeRefused, match=f"At most {creds.MAX_KEYS} keys per profile"):
            store.set_profile("p", add_keys=extra)
    assert len(store.profiles()["p"]["keys"]) == creds.MAX_KEYS


def test_a_profile_holding_keys_keeps_its_site(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNNINGHUB_ALLOWED_BASE_URLS", "http://127.0.0.1:9")
    store = creds.CredentialsStore(tmp_path / "c.json")
    store.set_profile("p", site="cn", keys=[KEY_A])
    for site in ("ai", "http://127.0.0.1:9"):
        with pytest.raises(errors.ProfileChangeRefused, match="holds 1 key"):
            store.set_profile("p", site=site)
    assert store.profiles()["p"]["site"] == "cn"
    store.set_profile("p", site="cn", add_keys=[KEY_B])  # the same site: fine
    store.set_profile("p", site="ai", keys=[KEY_B])  # keys sent again for the new site: fine
    assert creds.resolve_account("p", store).site.name == "ai"


def test_custom_addresses_only_where_the_owner_allowed_them(tmp_path, monkeypatch):
    store = creds.CredentialsStore(tmp_path / "c.json")
    with pytest.raises(errors.ProfileChangeRefused, match="RUNNINGHUB_ALLOWED_BASE_URLS=http://127.0.0.1:9"):
        store.set_profile("p", site="http://127.0.0.1:9", keys=[KEY_A])
    assert "p" not in store.profiles()
    # a file written before this rule (or by hand) is not used either
    store.path.write_text(json.dumps({"version": 1, "profiles": {"p": {
        "site": "http://127.0.0.1:9", "base_url": "http://127.0.0.1:9", "keys": [KEY_A]}}}))
    with pytest.raises(errors.CredentialsError, match="has not allowed"):
        creds.resolve_account("p", store)
    monkeypatch.setenv("RUNNINGHUB_ALLOWED_BASE_URLS", "http://example.test, HTTP://127.0.0.1:9/")
    assert creds.resolve_account("p", store).site.base_url == "http://127.0.0.1:9"
    store.set_profile("q", site="http://127.0.0.1:9/", keys=[KEY_B])
    assert creds.resolve_account("q", store).site.host == "127.0.0.1:9"


def test_scrub_hides_any_run_of_eight_characters_of_a_known_key_in_any_case():
    key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    creds.ApiKey(key)  # every key the process loads is remembered
    for echoed in (key, key.upper(), key[5:13], key[3:15].upper(), f"x{key[10:30]}y"):
        out = redact.scrub(f"remote said: {echoed}!")
        assert out.startswith("remote said: ") and out.endswith("!") and "…e1f0" in out, out
        for start in range(len(key) - 7):
            assert key[start:start + 8] not in out.lower()
    assert redact.scrub(f"short {key[4:11]} stays") == f"short {key[4:11]} stays"  # 7 characters
    tree = redact.scrub_tree({"msg": key, "data": [{"failedReason": {"exception_message": key[2:20]}}]})
    assert key[2:10] not in str(tree) and str(tree).count("…e1f0") == 2
