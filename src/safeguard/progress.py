"""Progress of long work (an ingest, a dbt build), for a person at a terminal and for a log.

On a terminal (stderr is a TTY) a ``rich`` progress bar is drawn and redrawn in place. Anywhere
else (cron, CI, an Airflow task log) the same facts come as plain lines that start with a UTC
timestamp, at most every :data:`INTERVAL` seconds, with no control character: a log keeps every
byte it is sent, so a bar redrawn ten times a second would fill it with carriage returns.
Nothing here names a delivered value: only file names (as ``shown_file_name`` gives them),
counts, rates and the names of dbt's nodes.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import IO, Any, Protocol

#: seconds between two plain progress lines
INTERVAL = 5.0


class Reporter(Protocol):
    """What ``land_file`` and ``ingest_file`` report to: about how many rows the file holds,
    the rows landed so far, then each later stage."""

    def expect(self, total: int | None) -> None: ...

    def __call__(self, done: int) -> None: ...

    def stage(self, text: str) -> None: ...


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def on_terminal(stream: IO[str] | None = None) -> bool:
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real file
        return False


def duration(seconds: float) -> str:
    """4.2s, 1m05s, 2h03m: short enough for a progress line."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def rows_expected(contract: Any, lines: int) -> int | None:
    """About how many records a delivered file of ``lines`` lines holds (landing counts them
    as it hashes the file), for the time left: a CSV's lines less its header (more than the
    records when a quoted value spans lines); None for the other formats, whose lines say
    nothing of their records."""
    if contract.file.format != "csv":
        return None
    return max(lines - contract.file.header_row, 0) or None


def _bar(stream: IO[str], *columns: Any):
    """A rich progress bar on ``stream``, which the caller found to be a terminal (rich would
    otherwise consult the environment, e.g. TERM, and might draw nothing)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn
    from rich.table import Column

    console = Console(file=stream, force_terminal=True, highlight=False)
    # one line however narrow the terminal: a long name is cut short, never wrapped
    name = Column(max_width=24, no_wrap=True, overflow="ellipsis")
    return Progress(TextColumn("{task.description}", table_column=name),
                    BarColumn(bar_width=10), *columns,
                    console=console, refresh_per_second=8)


def _rate(task: Any) -> float | None:
    speed = task.finished_speed or task.speed
    if speed is None and task.elapsed:
        speed = task.completed / task.elapsed
    return speed


class RowProgress:
    """Rows of one file read and sent to the database (``land_file`` tells it the estimate,
    then the rows done so far after each batch), with the rate and, when the total is known,
    the time left; then a line for each stage after landing. ``total``: an estimate (a CSV's
    lines less its header) or None, given here or later through ``expect``; the count may
    pass it, and then the estimate grows."""

    def __init__(self, what: str, total: int | None = None, stream: IO[str] | None = None,
                 interactive: bool | None = None, interval: float = INTERVAL) -> None:
        self.what = what
        self.total = total if total and total > 0 else None
        self.opened = False
        self.stream = stream or sys.stderr
        self.interactive = on_terminal(self.stream) if interactive is None else interactive
        self.interval = interval
        self.done = 0
        self.started = time.monotonic()
        self.said_at = self.started
        self.closed = False
        self.bar = None
        if self.interactive:
            from rich.progress import ProgressColumn, TimeRemainingColumn
            from rich.table import Column
            from rich.text import Text

            class Rows(ProgressColumn):
                def render(self, task: Any) -> Text:
                    total = f"/~{task.total:,.0f}" if task.total else ""
                    return Text(f"{task.completed:,.0f}{total} rows", no_wrap=True)

            class Rate(ProgressColumn):
                def render(self, task: Any) -> Text:
                    rate = _rate(task)
                    return Text(f"{rate:,.0f} rows/s" if rate else "- rows/s", no_wrap=True)

            self.bar = _bar(self.stream, Rows(table_column=Column(no_wrap=True)),
                            Rate(table_column=Column(no_wrap=True)),
                            TimeRemainingColumn(table_column=Column(no_wrap=True)))
            self.bar.start()
            self.task = self.bar.add_task(what, total=self.total)
        elif self.total is not None:
            self._open()

    def _open(self) -> None:
        """The first plain line, with the estimate if there is one by now."""
        if self.bar is None and not self.opened:
            self.opened = True
            self._say(f"{self.what} ..." + (f" (~{self.total:,} rows)" if self.total else ""))

    def _say(self, text: str) -> None:
        print(f"{stamp()} {text}", file=self.stream, flush=True)

    def expect(self, total: int | None) -> None:
        """About how many rows the file holds (None: not known)."""
        self.total = total if total and total > 0 else None
        if self.bar is not None:
            self.bar.update(self.task, total=self.total)
        self._open()

    def __call__(self, done: int) -> None:
        if self.closed:
            return
        self._open()
        self.done = done
        if self.total is not None and done > self.total:
            self.total = done
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=self.total)
            return
        now = time.monotonic()
        if now - self.said_at < self.interval:
            return
        self.said_at = now
        rate = done / max(now - self.started, 1e-6)
        left = (f", about {duration((self.total - done) / rate)} left"
                if self.total and rate > 0 else "")
        of = f" of ~{self.total:,}" if self.total else ""
        self._say(f"{self.what}: {done:,}{of} rows, {rate:,.0f} rows/s{left}")

    def close(self) -> None:
        """The rows are done: the bar is drawn complete, or a last line says how it went."""
        if self.closed:
            return
        self.closed = True
        self._open()
        took = time.monotonic() - self.started
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, total=self.done or None)
            self.bar.stop()
        else:
            self._say(f"{self.what}: {self.done:,} rows in {duration(took)} "
                      f"({self.done / max(took, 1e-6):,.0f} rows/s)")

    def stage(self, text: str) -> None:
        """A stage after the rows (validating, loading): one line, timestamped off a
        terminal."""
        self.close()
        if self.interactive:
            print(text, file=self.stream, flush=True)
        else:
            self._say(text)

    def __enter__(self) -> RowProgress:
        return self

    def __exit__(self, error: type[BaseException] | None, *_: object) -> None:
        if error is not None and self.bar is None:
            self.closed = True  # the caller says what went wrong; no "rows in" line before it
        self.close()


class StepProgress:
    """Steps of known number (dbt's nodes): on a terminal a bar of steps done of the total,
    naming what runs now, with the log lines printed above it; elsewhere the log lines only,
    each timestamped (the caller says how often: see ``transform.DbtProgress``)."""

    def __init__(self, what: str, stream: IO[str] | None = None, log: IO[str] | None = None,
                 interactive: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.log_stream = log or sys.stdout
        self.interactive = on_terminal(self.stream) if interactive is None else interactive
        self.bar = None
        if self.interactive:
            from rich.progress import MofNCompleteColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.table import Column

            whole = Column(no_wrap=True)
            self.bar = _bar(self.stream, MofNCompleteColumn(table_column=whole),
                            TimeElapsedColumn(table_column=whole),
                            TimeRemainingColumn(table_column=whole))
            self.bar.start()
            self.task = self.bar.add_task(what, total=None)
            self.what = what

    def update(self, done: int, total: int | None, running: str = "") -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total or None,
                            description=running or self.what)

    def log(self, line: str) -> None:
        if self.bar is not None:
            self.bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(f"{stamp()} {line}", file=self.log_stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
