"""Superset Alerts & Reports for real: the project's Redis, Superset's Celery worker and beat,
screenshots by headless Chromium (Selenium + Debian's chromedriver), mail to an SMTP server
that this test runs (aiosmtpd).

Nothing is called the way a test might shortcut it: the schedules are the ones kept in
``dashboards/reports/``, rescheduled to "every minute" through Superset's API, and beat's
``reports.scheduler`` hands them to the worker, which renders the dashboard in Chromium and
mails it. The weekly report's PDF is read back as a person would see it (it is made of
screenshots, so its text is read by OCR, ``tesseract``); a rejected delivery planted with
``safeguard ingest`` makes the alert mail the data engineers.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import psycopg
import pytest
from aiosmtpd.controller import Controller

from conftest import _remove_batches_since, safeguard_cli
from safeguard.ports import free_port
from safeguard.superset.bundle import REPORTS_FOLDER, bundle_dir
from safeguard.superset.client import SupersetClient
from safeguard.superset.reports import apply_schedules, existing, read_schedules, set_crontab
from safeguard.superset.server import SupersetServer

pytest_plugins = ["safeguard.superset.testing"]

pytestmark = [pytest.mark.superset, pytest.mark.browser]

REPORT = "Leadership overview, weekly"
ALERT = "Deliveries needing attention"
LEADERSHIP_TO = "leaders@safeguard-test.example"
ENGINEERS_TO = "engineers@safeguard-test.example,oncall@safeguard-test.example"
#: beat ticks every minute; the worker then renders a dashboard in Chromium and mails it
MAIL_WAIT_SECONDS = 300
OCR_TOOLS = ("pdftoppm", "tesseract")


class _Inbox:
    """aiosmtpd handler: every message received, with its envelope recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append((list(envelope.rcpt_tos),
                              email.message_from_bytes(envelope.content)))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for rcpt, m in self.messages if address in rcpt]


@pytest.fixture(scope="module")
def inbox() -> Iterator[_Inbox]:
    """A local SMTP server (no TLS, no login) that keeps what it receives."""
    handler = _Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        handler.port = controller.port  # type: ignore[attr-defined]
        yield handler
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def workers(superset_server: SupersetServer, inbox: _Inbox,
            monkeypatch_module) -> Iterator[SupersetServer]:
    """Superset's Celery worker and beat on the project's Redis, mailing through ``inbox``,
    with the schedules applied for this test's recipients; stopped (and the schedules put
    back) afterwards."""
    monkeypatch_module.setenv("SAFEGUARD_REPORT_LEADERSHIP_TO", LEADERSHIP_TO)
    monkeypatch_module.setenv("SAFEGUARD_ALERT_ENGINEERS_TO", ENGINEERS_TO)
    folder = bundle_dir(superset_server.settings) / REPORTS_FOLDER
    with SupersetClient.for_server(superset_server) as client:
        apply_schedules(client, folder)
    # ours, with this inbox: not any a restart of Superset may have started without it
    superset_server.report_workers.beat.stop()
    superset_server.report_workers.worker.stop()
    superset_server.start_report_workers({
        "SAFEGUARD_SMTP_HOST": "127.0.0.1", "SAFEGUARD_SMTP_PORT": str(inbox.port),
        "SAFEGUARD_SMTP_FROM": "safeguard@safeguard-test.example"})
    try:
        yield superset_server
    finally:
        superset_server.report_workers.beat.stop()
        superset_server.report_workers.worker.stop()
        monkeypatch_module.undo()
        with SupersetClient.for_server(superset_server) as client:
            apply_schedules(client, folder)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def triggered(workers: SupersetServer, tmp_path_factory) -> Iterator[SupersetServer]:
    """A rejected delivery planted, then both schedules set to run every minute (their waits
    overlap: one worker takes them in turn). The delivery is removed afterwards."""
    url = workers.settings.admin_url(workers.settings.warehouse_db)
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = conn.execute("select clock_timestamp()").fetchone()[0]
    empty = tmp_path_factory.mktemp("delivery") / "partner_empty_2017-08.csv"
    empty.write_text("")
    proc = safeguard_cli("ingest", "--source", "sample_partner_aggregates", str(empty),
                         check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # rejected whole
    with SupersetClient.for_server(workers) as client:
        set_crontab(client, REPORT, "* * * * *")
        set_crontab(client, ALERT, "* * * * *")
    yield workers
    with psycopg.connect(url, autocommit=True) as conn:
        _remove_batches_since(conn, t0)


def _wait_for_mail(inbox: _Inbox, address: str, server: SupersetServer) -> Message:
    deadline = time.monotonic() + MAIL_WAIT_SECONDS
    while time.monotonic() < deadline:
        if inbox.to(address):
            return inbox.to(address)[0]
        time.sleep(2)
    with SupersetClient.for_server(server) as client:
        logs = {}
        for row in existing(client):
            logs[row["name"]] = [(entry["state"], entry.get("error_message"))
                                 for entry in client.get_json(
                                     f"/api/v1/report/{row['id']}/log/")["result"][:5]]
    raise AssertionError(
        f"no mail to {address} within {MAIL_WAIT_SECONDS} s; received for "
        f"{[r for r, _ in inbox.messages]}\nexecution logs: {logs}\n"
        f"--- worker log tail:\n{server.report_workers.worker.tail(4000)}\n"
        f"--- beat log tail:\n{server.report_workers.beat.tail(1500)}")


def _attachments(message: Message, content_type: str) -> list[bytes]:
    return [part.get_payload(decode=True) for part in message.walk()
            if part.get_content_type() == content_type]


def _pdfs(message: Message) -> list[tuple[str, bytes]]:
    """Attached PDFs by name (Superset sends them as application/octet-stream)."""
    return [(part.get_param("name") or "", body) for part in message.walk()
            if not part.is_multipart()
            and (body := part.get_payload(decode=True) or b"").startswith(b"%PDF")]


def _read_top_of_pdf(pdf: Path) -> str:
    """What a reader sees at the top of the first page: Superset's PDF is one screenshot per
    page (no text layer), so OCR reads it: the banner and the headline row (~7 s, where the
    whole page takes ~40 s), at two resolutions, as OCR misreads a large digit now and then.
    The images stay beside the PDF for a person to look at."""
    text = ""
    for dpi in (150, 200):
        top = pdf.with_name(f"{pdf.stem}-top-{dpi}dpi")
        subprocess.run(["pdftoppm", "-r", str(dpi), "-f", "1", "-l", "1", "-x", "0", "-y", "0",
                        "-W", str(dpi * 24), "-H", str(dpi * 7), "-png", "-singlefile",
                        str(pdf), str(top)], check=True)
        text += subprocess.run(["tesseract", f"{top}.png", "-"], capture_output=True,
                               text=True, check=True).stdout
    return text


def test_the_schedules_are_code_applied_idempotently(superset_server: SupersetServer,
                                                    superset_client: SupersetClient):
    """Applying dashboards/reports/ twice leaves one schedule per file, with its crontab,
    owner and format; nothing made in git is left behind when its file goes."""
    folder = bundle_dir(superset_server.settings) / REPORTS_FOLDER
    specs = {s["name"]: s for s in read_schedules(folder).values()}
    assert set(specs) == {REPORT, ALERT}
    assert apply_schedules(superset_client, folder) == []
    assert apply_schedules(superset_client, folder) == []
    rows = [r for r in existing(superset_client) if r["name"] in specs]
    assert sorted(r["name"] for r in rows) == sorted(specs)
    for row in rows:
        detail = superset_client.get_json(f"/api/v1/report/{row['id']}")["result"]
        spec = specs[row["name"]]
        assert (detail["type"], detail["crontab"], detail["report_format"]) == (
            spec["type"], spec["crontab"], spec["format"])
        assert [o["id"] for o in detail["owners"]] and detail["active"]
        (recipient,) = detail["recipients"]
        assert spec["recipients"]["default"] in str(recipient["recipient_config_json"])
    alert = superset_client.get_json(
        f"/api/v1/report/{next(r['id'] for r in rows if r['name'] == ALERT)}")["result"]
    assert alert["validator_type"] == "operator" and alert["grace_period"] == 3600
    assert "marts.fct_pipeline_batches" in alert["sql"]


def test_a_schedule_whose_file_left_git_is_deleted(superset_server: SupersetServer,
                                                  superset_client: SupersetClient, tmp_path):
    """Like the bundle's orphans: a schedule we made goes when its file goes; one made in the
    UI (no file) stays."""
    folder = bundle_dir(superset_server.settings) / REPORTS_FOLDER
    kept = tmp_path / "reports"
    kept.mkdir()
    (kept / "Leadership_overview_weekly.yaml").write_text(
        (folder / "Leadership_overview_weekly.yaml").read_text())
    by_hand = {"type": "Report", "name": "Made in the UI", "crontab": "0 8 * * 1",
               "dashboard": superset_client.list_all("dashboard", ["id"])[0]["id"],
               "report_format": "PNG", "recipients": [{"type": "Email", "recipient_config_json":
                                                       {"target": "someone@example.org"}}]}
    made = superset_client.request("POST", "/api/v1/report/", json=by_hand).json()["id"]
    try:
        assert apply_schedules(superset_client, kept) == [f"alert {ALERT!r}"]
        assert {r["name"] for r in existing(superset_client)} == {REPORT, "Made in the UI"}
    finally:
        superset_client.request("DELETE", f"/api/v1/report/{made}")
        apply_schedules(superset_client, folder)
    assert {r["name"] for r in existing(superset_client)} == {REPORT, ALERT}


@pytest.mark.skipif(not all(shutil.which(t) for t in OCR_TOOLS),
                    reason="pdftoppm and tesseract come with `make setup`")
def test_the_weekly_report_mails_the_leadership_overview_as_pdf(triggered: SupersetServer,
                                                                inbox: _Inbox, tmp_path):
    """Beat schedules it, the worker screenshots the dashboard as the Leadership user and
    mails a PDF named after the dashboard, which shows its title, banner and headline figures.
    (Superset's report screenshot leaves the dashboard's title bar out, standalone=3: the
    banner's heading carries the title, so the printed page says what it is.)"""
    message = _wait_for_mail(inbox, LEADERSHIP_TO, triggered)
    assert message["Subject"].endswith(f"{REPORT}: Leadership overview"), message["Subject"]
    assert message["To"] == LEADERSHIP_TO
    ((name, pdf_bytes),) = _pdfs(message)
    assert name.endswith("Leadership overview.pdf"), name
    pdf = tmp_path / "leadership_overview.pdf"
    pdf.write_bytes(pdf_bytes)
    text = _read_top_of_pdf(pdf)
    assert "Leadership overview" in text, text  # the dashboard's title, in its banner
    assert "SYNTHETIC SAMPLE DATA" in text, text  # the dashboard's banner
    assert "Online enticement, change 2019 to 2020" in text, text  # the headline chart
    assert "+97.5" in text, text  # NCMEC's published rise of online enticement, 2019-2020


def test_a_rejected_delivery_makes_the_alert_mail_the_engineers(triggered: SupersetServer,
                                                               inbox: _Inbox):
    """The alert's query finds the planted rejected file and mails every engineer address,
    with the Pipeline health dashboard as an image."""
    message = _wait_for_mail(inbox, "engineers@safeguard-test.example", triggered)
    assert ALERT in message["Subject"]
    assert inbox.to("oncall@safeguard-test.example")
    assert _attachments(message, "image/png"), [p.get_content_type() for p in message.walk()]
