"""Webhook delivery: POST the TASK_END event, retry when the receiver fails or is slow."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

log = logging.getLogger("rhsim.webhook")


def webhook_allowed(url: str) -> bool:
    """The simulator only calls back to loopback hosts."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def deliver_webhook(record, event: dict, settings) -> None:
    """Up to 1 + settings.webhook_retries attempts; updates `record` as it goes."""
    body = json.dumps(event, ensure_ascii=False).encode("utf-8")
    record.event_data = event["eventData"]
    attempts = 1 + max(0, int(settings.webhook_retries))
    for attempt in range(attempts):
        if attempt:
            record.retry_count = attempt
            record.callback_status = "RETRYING"
            time.sleep(float(settings.webhook_retry_seconds))
        started = time.time()
        entry = {"time": started}
        try:
            request = urllib.request.Request(
                record.url, data=body, method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "rhsim-webhook/1"},
            )
            with urllib.request.urlopen(request, timeout=float(settings.webhook_timeout_seconds)) as reply:
                reply.read()
                entry["status"] = reply.status
        except urllib.error.HTTPError as exc:
            entry["status"] = exc.code
            entry["error"] = f"HTTP {exc.code}"
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["seconds"] = round(time.time() - started, 3)
        record.attempts.append(entry)
        record.updated = time.time()
        if "error" not in entry and 200 <= entry.get("status", 0) < 300:
            record.callback_status = "SUCCESS"
            log.info("webhook %s delivered (attempt %d)", record.url, attempt + 1)
            return
        log.info("webhook %s attempt %d failed: %s", record.url, attempt + 1, entry.get("error"))
    record.callback_status = "FAILED"
