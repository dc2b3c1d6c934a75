"""Being told: a task that fails in Airflow calls the notifier, which logs the alert and posts
it to the configured webhook (a real HTTP receiver here), with the message that names the
file, the row, the column and the rule."""

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
def broken_delivery(pipeline_done):
    text = (ROOT / "data/sample/ncmec_cybertipline_2019_2022.csv").read_text()
    drop = pipeline_done.home / "drop" / "ncmec_cybertipline"
    drop.mkdir(parents=True, exist_ok=True)
    path = drop / "ncmec_negative.csv"
    path.write_text(text.replace('"44,155"', "-44155"))
    yield path
    shutil.rmtree(drop)


def test_failed_task_is_logged_and_posted_to_the_webhook(pipeline_done, broken_delivery,
                                                         webhook, monkeypatch):
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
