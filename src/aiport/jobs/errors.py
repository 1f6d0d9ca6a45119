"""Why a job stopped, as the executor needs to tell it apart."""

from __future__ import annotations


class JobFailed(Exception):
    """The job cannot succeed; retrying would not help. The message goes to the user."""

    def __init__(self, message: str, code: str = "job_failed") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class LeaseLost(Exception):
    """This worker no longer owns the job (cancelled, or taken over after a stall): stop
    without writing anything."""
