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


def test_token_shaped_values_are_removed_even_unregistered() -> None:
    event = RedactSecrets()(None, "info", {"event": "x", "detail": "header Atza|abcdef123 and Bearer xyz.987"})
    assert event["detail"] == f"header {REDACTED} and {REDACTED}"


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
