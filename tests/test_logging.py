"""The redaction processor, called directly with each kind of secret, and the whole pipeline."""

from __future__ import annotations

import io

import orjson
import pytest
import structlog

from spd.core.logging import REDACTED, RedactSecrets, build_processors

CLIENT_SECRET = "amzn1.oa2-cs.v1.fakefakefakefakefakefake"
REFRESH_TOKEN = "Atzr|IwEBIFAKE-refresh-token-for-tests-only"
ACCESS_TOKEN = "Atza|IwEBIFAKE-access-token-for-tests-only"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKEKEY"
WEBHOOK_SECRET = "whsec-fake-webhook-secret"


@pytest.fixture
def redact() -> RedactSecrets:
    r = RedactSecrets()
    r.register([CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN, AWS_SECRET, WEBHOOK_SECRET])
    return r


@pytest.mark.parametrize("key,value", [
    ("client_secret", CLIENT_SECRET),
    ("refresh_token", REFRESH_TOKEN),
    ("access_token", ACCESS_TOKEN),
    ("secret_access_key", AWS_SECRET),
    ("secret", WEBHOOK_SECRET),
    ("x-amz-access-token", ACCESS_TOKEN),
])
def test_secret_keys_are_redacted(redact: RedactSecrets, key: str, value: str) -> None:
    event = redact(None, "info", {"event": "x", key: value})
    assert event[key] == REDACTED


@pytest.mark.parametrize("secret", [CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN, AWS_SECRET, WEBHOOK_SECRET])
def test_registered_secrets_are_removed_inside_text(redact: RedactSecrets, secret: str) -> None:
    event = redact(None, "error", {"event": "lwa_failed", "error": f"POST failed with body {secret}!",
                                   "nested": {"list": [f"a {secret} b"]}})
    dumped = orjson.dumps(event).decode()
    assert secret not in dumped
    assert event["error"] == f"POST failed with body {REDACTED}!"
    assert event["nested"]["list"] == [f"a {REDACTED} b"]


def test_a_config_of_thousands_of_secrets_still_redacts_each_of_them() -> None:
    """With more secrets than a text has characters the text is read by prefix instead of being
    searched for each secret: every secret is still found, at either end, sharing its first
    characters with others, or inside a longer one (which goes whole)."""
    r = RedactSecrets()
    many = [f"cs-{n:05d}-fake-client-secret" for n in range(3000)]
    r.register([*many, "cs-0", "cs-00042-fake", "tiny"])
    for secret in (many[0], many[1234], many[-1], "cs-0"):
        for text in (secret, f"{secret} at the start", f"at the end: {secret}", f"x{secret}y"):
            assert secret not in orjson.dumps(r(None, "info", {"event": "x", "detail": text})).decode()
    assert r.scrub(f"a {many[42]} b") == f"a {REDACTED} b"  # the longer secret, not "cs-00042-fake"
    assert r.scrub("cs-10042-fake and tin and cs-") == "cs-10042-fake and tin and cs-"
    assert r.scrub("tiny,tiny") == f"{REDACTED},{REDACTED}"


def test_token_shaped_values_are_removed_even_unregistered() -> None:
    event = RedactSecrets()(None, "info", {"event": "x", "detail": "header Atza|abcdef123 and Bearer xyz.987"})
    assert event["detail"] == f"header {REDACTED} and {REDACTED}"


def test_the_hint_for_an_unset_secret_variable_is_kept() -> None:
    """spd's own message for an unset ${SPD_WEBHOOK_SECRET} shows the default syntax intact."""
    hint = "environment variable SPD_WEBHOOK_SECRET is not set; give a default with ${SPD_WEBHOOK_SECRET:-default}"
    assert RedactSecrets().scrub(hint) == hint
    assert RedactSecrets().scrub("secret: -abcdefgh12") == f"secret: {REDACTED}"  # a value after a space


def test_harmless_values_are_kept(redact: RedactSecrets) -> None:
    event = redact(None, "info", {"event": "page_delivered", "poller": "orders", "objects": 100,
                                  "token_bucket": None})
    assert event == {"event": "page_delivered", "poller": "orders", "objects": 100, "token_bucket": None}


def test_exceptions_are_redacted_in_the_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    from spd.core import logging as spd_logging

    spd_logging.redact_secrets.register([REFRESH_TOKEN])
    out = io.StringIO()
    logger = structlog.wrap_logger(structlog.PrintLogger(out), processors=build_processors("json"))
    try:
        raise RuntimeError(f"token exchange failed for {REFRESH_TOKEN}")
    except RuntimeError:
        logger.exception("lwa_failed")
    line = out.getvalue()
    assert "lwa_failed" in line and "RuntimeError" in line
    assert REFRESH_TOKEN not in line
    assert REDACTED in orjson.loads(line)["exception"]
