"""Send fired budget alerts to the user's notification targets, outside the agent.

Runs in a detached `costhook hook --notify` process started by the hook that fired the
alert, so a slow or dead endpoint never delays the agent. Each alert is claimed
atomically before sending, so two notifiers never send the same alert twice.
"""

import json
import os
import time
import urllib.request

from costhook.store import db, writes

TITLE = "costhook budget alert"
MAX_AGE_S = 3600  # alerts older than this when first seen by a notifier are stale news


def send_pending(conn, targets: list, *, limit: int = 50) -> int:
    """Send every alert not yet delivered to all targets; returns how many were sent."""
    if not targets:
        return 0
    claim = f"sending:{os.getpid()}:{time.time_ns()}"
    stale_before = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - MAX_AGE_S))
    with db.transaction(conn):
        rows = writes.claim_alerts(conn, claim, stale_before, limit)
    failures = []
    for alert_id, message in rows:
        for target in targets:
            try:
                deliver(target, message)
            except Exception as exc:  # one dead endpoint must not stop the others
                failures.append(f"{target['type']}: {type(exc).__name__}: {exc}")
        writes.alert_sent(conn, alert_id, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if failures:
        raise RuntimeError(f"{len(failures)} notification(s) failed; first: {failures[0]}")
    return len(rows)


def deliver(target: dict, message: str) -> None:
    """One message to one target; errors are logged by the caller's fail-open wrapper."""
    timeout = float(target.get("timeout", 5))
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
