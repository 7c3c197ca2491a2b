"""Send fired budget alerts to the user's notification targets, outside the agent.

Runs in a detached `costhook hook --notify` process started by the hook that fired the
alert, so a slow or dead endpoint never delays the agent. Each alert is claimed
atomically before sending, so two notifiers never send the same alert twice.

Each delivery has one overall deadline (the target's `timeout`, covering connect, send and
the answer): a socket timeout alone bounds each read, so an endpoint that drips a byte
now and then would keep the notifier alive, and its alerts claimed, for good. An alert no
target took is marked failed; a claim left by a notifier that died is released.
"""

import json
import os
import threading
import time
import urllib.request

from costhook.store import db, writes

TITLE = "costhook budget alert"
MAX_AGE_S = 3600  # alerts older than this when first seen by a notifier are stale news
CLAIM_TTL_S = 900  # a claim older than this is a dead notifier's (one run takes limit x targets x timeout at most)
MAX_TIMEOUT_S = 60.0


def send_pending(conn, targets: list, *, limit: int = 50) -> int:
    """Send every alert not yet delivered to all targets; returns how many were sent."""
    if not targets:
        return 0
    claim = f"sending:{os.getpid()}:{time.time_ns()}"
    stale_before = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - MAX_AGE_S))
    with db.transaction(conn):
        writes.release_stale_claims(conn, time.time_ns() - int(CLAIM_TTL_S * 1e9))
        rows = writes.claim_alerts(conn, claim, stale_before, limit)
    failures = []
    sent = 0
    for alert_id, message in rows:
        delivered = False
        for target in targets:
            try:
                deliver(target, message)
                delivered = True
            except Exception as exc:  # one dead endpoint must not stop the others
                failures.append(f"{target['type']}: {type(exc).__name__}: {exc}")
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if delivered:
            writes.alert_sent(conn, alert_id, when)
            sent += 1
        else:
            writes.alert_failed(conn, alert_id, when)
    if failures:
        raise RuntimeError(f"{len(failures)} notification(s) failed; first: {failures[0]}")
    return sent


def deliver(target: dict, message: str) -> None:
    """One message to one target within the target's timeout, all told; errors are logged
    by the caller's fail-open wrapper. The send runs in a daemon thread: one that is still
    stuck at the deadline is abandoned (the process exits without waiting for it)."""
    timeout = float(target.get("timeout", 5))
    timeout = 5.0 if timeout != timeout else min(max(timeout, 0.1), MAX_TIMEOUT_S)  # NaN, 0, inf
    outcome: list = []

    def run():
        try:
            _send(target, message, timeout)
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=run, name="costhook-notify", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise TimeoutError(f"timed out: no complete answer within {timeout:g} s")
    if outcome[0] is not None:
        raise outcome[0]


def _send(target: dict, message: str, timeout: float) -> None:
    if target["type"] == "webhook":
        body = json.dumps({"text": message, "title": TITLE}).encode()
        request = urllib.request.Request(
            target["url"], data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1024)
    elif target["type"] == "apprise":
        try:
            import apprise
        except ImportError:
            raise RuntimeError("the apprise target needs `pip install 'costhook[notify]'`") from None
        sender = apprise.Apprise()
        if not sender.add(target["url"]):
            raise RuntimeError("apprise does not understand that notification URL")
        if not sender.notify(title=TITLE, body=message):
            raise RuntimeError("apprise could not deliver the notification")
