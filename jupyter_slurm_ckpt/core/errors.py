"""Errors of the executor core, raised in the submitting process."""

from __future__ import annotations


class UncompletedJobError(RuntimeError):
    """The job ended (or was asked for its result) without producing a result."""


class FailedJobError(UncompletedJobError):
    """The job's callable raised; the message holds the remote traceback.

    A kind of ``UncompletedJobError`` (as in submitit): ``except UncompletedJobError`` catches
    every job that gave no result.
    """


class FailedSubmissionError(RuntimeError):
    """The job could not be submitted; nothing was left half-submitted."""


class JobFolderError(RuntimeError):
    """A job folder or one of its files cannot be used safely (permissions, corruption)."""


class PayloadError(JobFolderError):
    """A pickle of the job folder is truncated, garbage, or written by other versions."""


class UnknownParameterError(ValueError, NameError):
    """An executor parameter name that no backend knows.

    A ``ValueError`` like every parameter error here, and a ``NameError`` as submitit's
    ``AutoExecutor`` raises for unknown names, so handlers written for either catch it.
    """


class InvalidParameterError(ValueError, AssertionError):
    """An executor parameter with a bad value, or parameters that conflict.

    A ``ValueError``, and an ``AssertionError`` as submitit's ``AutoExecutor`` raises for a
    generic parameter of the wrong type.
    """
