"""Being told: failed and retried tasks call ``notify``, which always logs, and also posts to a
webhook and/or sends an e-mail when the environment configures them.

- always: a JSON line in ``$SAFEGUARD_HOME/logs/alerts.jsonl`` and a WARNING in the task log;
- ``SAFEGUARD_ALERT_WEBHOOK_URL``: a JSON POST (Slack/Teams/Mattermost-style ``text`` field plus
  the structured event);
- ``SAFEGUARD_ALERT_SMTP_HOST`` and ``SAFEGUARD_ALERT_EMAIL_TO`` (comma-separated; optional
  ``SAFEGUARD_ALERT_SMTP_PORT``, ``_USER``, ``_PASSWORD``, ``SAFEGUARD_ALERT_EMAIL_FROM``): a
  plain-text e-mail. ``SAFEGUARD_ALERT_SMTP_STARTTLS`` (true/false) says whether to upgrade
  the connection with STARTTLS; unset, it is on only when a user is given, so a password never
  crosses the network in clear unless you say so (a local relay needs neither).

A notifier never fails the task it reports on: delivery errors are logged and swallowed.
Alerts carry the batch's message (file, row, column, rule), never row values.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from safeguard.config import AlertSettings, settings

log = logging.getLogger("safeguard.notify")


def _text(event: dict[str, Any]) -> str:
    head = f"[safeguard] {event['dag_id']}.{event['task_id']} {event['event']}"
    if event.get("try_number"):
        head += f" (try {event['try_number']})"
    return f"{head}: {event.get('message') or ''}".strip()


def notify(event: dict[str, Any]) -> None:
    event = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **event}
    text = _text(event)
    log.warning(text)
    try:
        folder = settings().home / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "alerts.jsonl").open("a") as f:
            f.write(json.dumps(event, default=str) + "\n")
    except OSError as e:
        log.error("could not write the alert log: %s", e)

    alerts = AlertSettings.from_env()
    url = alerts.webhook_url
    if url:
        try:
            import httpx

            httpx.post(url, json={"text": text, "event": event}, timeout=10).raise_for_status()
        except Exception as e:  # a notifier must not fail the task it reports on
            # the address is a bearer secret, and httpx's messages quote it: the kind only
            status = getattr(getattr(e, "response", None), "status_code", None)
            log.error("alert webhook failed (%s%s); its address is a secret and is not logged",
                      type(e).__name__, f", HTTP {status}" if status else "")

    host, to = alerts.smtp_host, alerts.email_to
    if host and to:
        try:
            msg = EmailMessage()
            first = text.splitlines()[0]
            # a long first line is cut visibly; the body always has the whole message
            msg["Subject"] = first if len(first) <= 200 else first[:199] + "…"
            msg["From"] = alerts.email_from
            msg["To"] = to
            msg.set_content(f"{text}\n\nDetails:\n{json.dumps(event, indent=2, default=str)}\n")
            user = alerts.smtp_user
            with smtplib.SMTP(host, alerts.smtp_port, timeout=10) as smtp:
                if alerts.starttls:
                    # verify the server's certificate (smtplib does not unless given a
                    # context): the system's CAs, or SAFEGUARD_ALERT_SMTP_CAFILE
                    smtp.starttls(context=ssl.create_default_context(
                        cafile=alerts.smtp_cafile))
                if user:
                    smtp.login(user, alerts.smtp_password)
                smtp.send_message(msg)
        except Exception as e:
            log.error("e-mail to %s failed: %s", to, e)


def _from_context(context: dict[str, Any], what: str) -> dict[str, Any]:
    ti = context.get("ti") or context.get("task_instance")
    error = context.get("exception")
    return {
        "event": what,
        "dag_id": getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": context.get("run_id") or getattr(ti, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "message": str(error) if error else None,
    }


def task_failed(context: dict[str, Any]) -> None:
    """Airflow ``on_failure_callback``."""
    notify(_from_context(context, "failed"))


def task_retrying(context: dict[str, Any]) -> None:
    """Airflow ``on_retry_callback``."""
    notify(_from_context(context, "up_for_retry"))
