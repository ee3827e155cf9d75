"""Errors of the executor core, raised in the submitting process."""

from __future__ import annotations


class UncompletedJobError(RuntimeError):
    """The job ended (or was asked for its result) without producing a result."""


class FailedJobError(RuntimeError):
    """The job's callable raised; the message holds the remote traceback."""


class FailedSubmissionError(RuntimeError):
    """The job could not be submitted; nothing was left half-submitted."""


class JobFolderError(RuntimeError):
    """A job folder or one of its files cannot be used safely (permissions, corruption)."""


class PayloadError(JobFolderError):
    """A pickle of the job folder is truncated, garbage, or written by other versions."""
