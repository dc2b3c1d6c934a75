"""Being told: a task that fails in Airflow calls the notifier, which logs the alert, posts it
to the configured webhook and mails it (a real HTTP receiver and a real SMTP server here),
with the message that names the file, the row, the column and the rule."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ROOT


@pytest.fixture()
def webhook():
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


@pytest.fixture()
def mailbox(monkeypatch):
    """A real SMTP server (Python 3.11's smtpd) on a free port; the notifier is pointed at it.
    No STARTTLS and no login: a local relay, as most sites run one."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import asyncore
        import smtpd

    received: list[tuple[str, list[str], bytes]] = []

    class Receiver(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
            received.append((mailfrom, rcpttos, data))

    channels: dict = {}  # the server's own socket map, so the loop stops when it closes
    server = Receiver(("127.0.0.1", 0), None, map=channels, decode_data=False)
    thread = threading.Thread(target=asyncore.loop,
                              kwargs={"timeout": 0.05, "map": channels}, daemon=True)
    thread.start()
    monkeypatch.setenv("SAFEGUARD_ALERT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SAFEGUARD_ALERT_SMTP_PORT", str(server.socket.getsockname()[1]))
    monkeypatch.setenv("SAFEGUARD_ALERT_EMAIL_TO", "duty@ngo.example, data@ngo.example")
    monkeypatch.setenv("SAFEGUARD_ALERT_EMAIL_FROM", "safeguard@ngo.example")
    monkeypatch.delenv("SAFEGUARD_ALERT_SMTP_USER", raising=False)
    monkeypatch.delenv("SAFEGUARD_ALERT_SMTP_STARTTLS", raising=False)
    yield received
    server.close()
    thread.join(5)


def _mails(received: list[tuple[str, list[str], bytes]]):
    from email import message_from_bytes
    from email.policy import default

    return [(frm, to, message_from_bytes(data, policy=default)) for frm, to, data in received]


@pytest.fixture()
def broken_delivery(pipeline_done):
    text = (ROOT / "data/sample/ncmec_cybertipline_2019_2022.csv").read_text()
    drop = pipeline_done.home / "drop" / "ncmec_cybertipline"
    drop.mkdir(parents=True, exist_ok=True)
    path = drop / "ncmec_negative.csv"
    path.write_text(text.replace('"44,155"', "-44155"))
    yield path
    shutil.rmtree(drop)


def test_failed_task_is_logged_posted_and_mailed(pipeline_done, broken_delivery, webhook,
                                                 mailbox, monkeypatch):
    from safeguard.runner import dags_test

    url, received = webhook
    monkeypatch.setenv("SAFEGUARD_ALERT_WEBHOOK_URL", url)
    alerts = pipeline_done.home / "logs" / "alerts.jsonl"
    before = alerts.read_text().count("\n") if alerts.exists() else 0

    state = dags_test(pipeline_done, "ingest__ncmec_cybertipline",
                      {"file": broken_delivery.name})
    assert state == "failed"

    posted = [r for r in received if r["event"]["dag_id"] == "ingest__ncmec_cybertipline"]
    assert len(posted) == 1, received  # a bad file is not retried: one alert, not three
    event = posted[0]["event"]
    assert (event["task_id"], event["event"]) == ("validate_and_load", "failed")
    assert "ncmec_negative.csv, row 4, column value: rule count_is_whole_non_negative" \
        in event["message"]
    assert posted[0]["text"].startswith("[safeguard] ingest__ncmec_cybertipline."
                                        "validate_and_load failed")
    logged = [json.loads(line) for line in alerts.read_text().splitlines()[before:]]
    assert any(e["task_id"] == "validate_and_load" and e["event"] == "failed" for e in logged)

    mails = [(frm, to, m) for frm, to, m in _mails(mailbox)
             if "ingest__ncmec_cybertipline" in m["Subject"]]
    assert len(mails) == 1, [m["Subject"] for _, _, m in _mails(mailbox)]
    frm, to, mail = mails[0]
    assert frm == "safeguard@ngo.example"
    assert sorted(to) == ["data@ngo.example", "duty@ngo.example"]
    assert mail["Subject"].startswith("[safeguard] ingest__ncmec_cybertipline.validate_and_load "
                                      "failed")
    body = mail.get_content()
    assert "ncmec_negative.csv, row 4, column value: rule count_is_whole_non_negative" in body
    assert '"task_id": "validate_and_load"' in body


def test_mail_is_sent_without_starttls_unless_asked_and_a_failed_mail_is_only_logged(
        sg_settings, mailbox, monkeypatch, caplog):
    """The notifier as the callbacks call it, against the same real server: a plain relay gets
    the mail; asking for STARTTLS of a server that offers none fails the mail, which is
    logged, never raised into the task being reported on."""
    from safeguard.notify import notify

    event = {"event": "failed", "dag_id": "ingest__sample_partner_aggregates",
             "task_id": "land", "run_id": "manual__2026-11-29", "try_number": 1,
             "message": "partner_monthly_2023-03.csv, row 1 (header): columns do not match "
                        "contract 'sample_partner_aggregates' (rule: header_matches_contract)"}
    notify(event)
    (_, _, mail), = _mails(mailbox)
    subject = mail["Subject"]
    assert subject.startswith("[safeguard] ingest__sample_partner_aggregates.land failed "
                              "(try 1): partner_monthly_2023-03.csv, row 1 (header)")
    assert len(subject) == 200 and subject.endswith("…")  # cut, and visibly so
    assert event["message"] in mail.get_content()  # the body has the whole of it

    monkeypatch.setenv("SAFEGUARD_ALERT_SMTP_STARTTLS", "true")
    with caplog.at_level("ERROR", logger="safeguard.notify"):
        notify(event)
    assert len(mailbox) == 1
    assert any("e-mail to duty@ngo.example, data@ngo.example failed" in r.getMessage()
               and "STARTTLS" in r.getMessage() for r in caplog.records), caplog.text
