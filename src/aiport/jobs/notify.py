"""In-app notifications: one per finished job, to the user who started it.

Written in the job's final transaction with a unique `dedupe_key`, so a redelivered job
can never notify twice. Browsers get them over SSE (/api/notifications/stream).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from aiport.jobs.views import job_url
from aiport.store.jobs import Job, Notification

_TITLES = {
    "succeeded": "Your {kind} job finished",
    "failed": "Your {kind} job failed",
}


async def job_finished(session: AsyncSession, job: Job) -> None:
    """Tell the owner their job ended (a cancellation they asked for needs no message)."""
    title = _TITLES.get(job.status)
    if title is None:
        return
    body = job.error_message or (job.progress_message or "")
    session.add(
        Notification(
            org_id=job.org_id,
            user_id=job.user_id,
            type=f"job.{job.status}",
            title=title.format(kind=job.kind),
            body=body[:2000],
            data={"job_id": job.id, "status": job.status, "url": job_url(job.id)},
            dedupe_key=f"{job.id}:{job.status}",
        )
    )
