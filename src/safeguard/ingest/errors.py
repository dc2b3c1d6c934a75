"""Errors a data engineer reads: each names the file, the row, the column and the rule."""

from __future__ import annotations


class IngestError(Exception):
    """A batch was not loaded. ``str()`` is the message to show; ``batch_id`` may be None."""

    def __init__(self, message: str, batch_id: str | None = None, result=None):
        super().__init__(message)
        self.batch_id = batch_id
        #: the BatchResult, when the batch was judged (rows set aside, or rejected)
        self.result = result


class FileRejected(IngestError):
    """The file as a whole cannot be read under its contract (header, encoding, empty...)."""


class ValidationFailed(IngestError):
    """Rows broke the contract's rules; they are in ``quarantine.rows`` with the reasons."""


class SourceBusy(IngestError):
    """Another batch of the same source is still in landing; retry later."""
