"""Optional API keys: off by default; on, every route but health, metrics and docs needs one."""

from __future__ import annotations

import os
import time

import pytest

from service.http.auth import ApiKeys, key_id
from tests.support.permissions import not_as_root
from tests.support.servers import POSITIVE_TEXT, make_settings, serve

KEY, OTHER = "k-0123456789abcdef", "k-fedcba9876543210"


def bearer(key: str) -> dict:
    return {"authorization": f"Bearer {key}"}


async def test_off_by_default_and_says_so(caplog):
    caplog.set_level("INFO", logger="service.auth")
    async with serve(make_settings()) as (_, client):
        assert (await client.post("/predict", json={"text": "fine"})).status_code == 200
        schemes = (await client.get("/openapi.json")).json()["components"]["securitySchemes"]
        assert set(schemes) == {"AdminToken"}  # (the admin API's own bearer token)
    assert "access control off" in caplog.text


async def test_a_key_is_needed_on_every_route_but_health_metrics_and_docs(caplog):
    caplog.set_level("INFO")
    async with serve(make_settings(api_keys=[KEY, OTHER], admin_token="admin-token-123456")) as (
        _,
        client,
    ):
        for method, path, body in (
            ("POST", "/predict", {"text": POSITIVE_TEXT}),
            ("POST", "/tokenize", {"text": "fine"}),
            ("GET", "/model", None),
            ("GET", "/models", None),
        ):
            refused = await client.request(method, path, json=body)
            assert refused.status_code == 401, (path, refused.text)
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert refused.json()["error"]["code"] == "unauthorized"
            wrong = await client.request(method, path, json=body, headers=bearer("nope"))
            assert wrong.status_code == 401
            ok = await client.request(method, path, json=body, headers=bearer(OTHER))
            assert ok.status_code == 200, (path, ok.text)
        for path in ("/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs"):
            assert (await client.get(path)).status_code == 200, path
        # the admin API keeps its own token
        swap = await client.post(
            "/admin/model", json={"version": "x"}, headers=bearer("admin-token-123456")
        )
        assert swap.status_code == 422  # authorised, then refused for the missing version
        schema = (await client.get("/openapi.json")).json()
        assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
        assert schema["paths"]["/predict"]["post"]["security"] == [{"ApiKey": []}]
        assert "security" not in schema["paths"]["/health/ready"]["get"]
        # the 401 in each protected operation's list, in the shape its path answers with
        unauthorized = schema["paths"]["/predict"]["post"]["responses"]["401"]
        assert unauthorized["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorResponse"
        )
        v2 = schema["paths"]["/v2/models/{name}/infer"]["post"]["responses"]["401"]
        assert v2["content"]["application/json"]["schema"]["$ref"].endswith("/V2Error")
        assert "401" not in schema["paths"]["/health/ready"]["get"]["responses"]
    assert "access control on: 2 API keys" in caplog.text
    assert KEY not in caplog.text and OTHER not in caplog.text


async def test_the_key_is_checked_before_the_body_is_read(caplog):
    caplog.set_level("INFO", logger="service.access")
    async with serve(make_settings(api_keys=[KEY])) as (_, client):
        # invalid JSON, wrong content type: still 401 first, not 422/415
        bad = await client.post("/predict", content=b"{not json", headers={"content-type": "x/y"})
        assert bad.status_code == 401
        ok = await client.post("/predict", json={"text": "fine"}, headers=bearer(KEY))
        assert ok.status_code == 200
    lines = [r for r in caplog.records if r.name == "service.access"]
    assert any(getattr(r, "key", None) == key_id(KEY) for r in lines)  # a key id, not the key
    assert KEY not in caplog.text


async def test_a_non_ascii_key_sent_as_utf8_is_accepted():
    """curl sends a key as the terminal typed it (UTF-8); the keys are UTF-8 too."""
    key = "clé-0123456789€"
    async with serve(make_settings(api_keys=[key])) as (_, client):
        header = {"authorization": b"Bearer " + key.encode()}
        ok = await client.post("/predict", json={"text": "fine"}, headers=header)
        assert ok.status_code == 200, ok.text
        latin = {"authorization": b"Bearer " + key.encode("latin-1", "replace")}
        assert (
            await client.post("/predict", json={"text": "fine"}, headers=latin)
        ).status_code == 401


def test_a_keys_file_rotates_without_a_restart(tmp_path, monkeypatch):
    import service.http.auth as auth

    monkeypatch.setattr(auth, "_RECHECK_FILE_S", 0.0)
    file = tmp_path / "keys"
    file.write_text(f"# clients\n{KEY}\n")
    keys = ApiKeys([], file)
    assert keys.identify(KEY) == key_id(KEY) and keys.identify(OTHER) is None
    file.write_text(f"{OTHER}\n")
    future = time.time() + 5
    os.utime(file, (future, future))
    assert keys.identify(OTHER) == key_id(OTHER) and keys.identify(KEY) is None
    file.unlink()  # a rotation half done: keep the keys we had
    assert keys.identify(OTHER) == key_id(OTHER)


@pytest.mark.parametrize("header", ["", "Basic abc", "Bearer", f"bearer {KEY}x"])
def test_only_a_bearer_with_a_current_key_identifies(header):
    from service.http.auth import _bearer

    keys = ApiKeys([KEY])
    scope = {"headers": [(b"authorization", header.encode())] if header else []}
    assert keys.identify(_bearer(scope)) is None
    assert keys.identify(_bearer({"headers": [(b"authorization", f"bearer {KEY}".encode())]}))


def test_an_indented_comment_is_no_key(tmp_path):
    """Before, "  # old key" became the key "# old key"."""
    file = tmp_path / "keys"
    file.write_text(f"  # old key\n\t#{OTHER}\n  {KEY}  \n\n")
    keys = ApiKeys([], file)
    assert len(keys) == 1 and keys.identify(KEY) == key_id(KEY)
    assert keys.identify("# old key") is None and keys.identify(f"#{OTHER}") is None


def _replace(file, content: bytes | None) -> None:
    """Rotate as the README says: a new file renamed over the old one (None: a directory)."""
    new = file.with_name("keys.new")
    if content is None:
        new.mkdir()
        file.unlink()  # (a directory cannot be renamed over a file)
        new.rename(file)
    else:
        new.write_bytes(content)
        os.replace(new, file)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        # before: a 500 with a traceback, once a second
        (b"\xff\xfe k\xe9y\n", "is not UTF-8 text"),
        (b"# keys to come\n\n", "holds no keys"),  # before: no keys, every client 401
        (None, "cannot be read"),  # (a directory: unreadable even for root)
    ],
)
def test_a_rotation_that_fails_keeps_the_keys_and_says_why_once(
    tmp_path, monkeypatch, caplog, content, why
):
    import service.http.auth as auth

    monkeypatch.setattr(auth, "_RECHECK_FILE_S", 0.0)
    caplog.set_level("INFO", logger="service.auth")
    file = tmp_path / "keys"
    file.write_text(f"{KEY}\n")
    keys = ApiKeys([], file)
    _replace(file, content)
    for _ in range(5):
        assert keys.identify(KEY) == key_id(KEY)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, caplog.text
    assert why in warnings[0].why and warnings[0].keys == 1
    assert "API keys reloaded" not in caplog.text
    if content is None:
        file.rmdir()
    _replace(file, f"{OTHER}\n".encode())  # the next good file is used
    assert keys.identify(OTHER) == key_id(OTHER) and keys.identify(KEY) is None


def test_a_file_rewritten_in_place_is_not_used_while_empty(tmp_path, monkeypatch):
    """A rewrite in place (truncate, then write) can be read between the two steps."""
    import service.http.auth as auth

    monkeypatch.setattr(auth, "_RECHECK_FILE_S", 0.0)
    file = tmp_path / "keys"
    file.write_text(f"{KEY}\n")
    keys = ApiKeys([], file)
    with file.open("w") as half_written:
        half_written.truncate()
        half_written.flush()
        assert keys.identify(KEY) == key_id(KEY)
        half_written.write(f"{OTHER}\n")
    assert keys.identify(OTHER) == key_id(OTHER) and keys.identify(KEY) is None


@not_as_root
def test_an_unreadable_new_file_keeps_the_keys_until_it_is_made_readable(
    tmp_path, monkeypatch, caplog
):
    import service.http.auth as auth

    monkeypatch.setattr(auth, "_RECHECK_FILE_S", 0.0)
    file = tmp_path / "keys"
    file.write_text(f"{KEY}\n")
    keys = ApiKeys([], file)
    _replace(file, f"{OTHER}\n".encode())
    file.chmod(0)
    assert keys.identify(KEY) == key_id(KEY) and keys.identify(OTHER) is None
    assert caplog.records[-1].why == "cannot be read: Permission denied"
    file.chmod(0o600)  # fixing the mode (no new content) is a change too
    assert keys.identify(OTHER) == key_id(OTHER)
