"""Small asyncio helpers the site agent's tasks share."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float | None) -> None:
    """Return when ``event`` is set or after ``timeout`` seconds (``None``: no limit), which
    sets it.  Unlike ``asyncio.wait_for`` on Python 3.11 it never swallows a cancellation that
    arrives as the event is set, so a task waiting here can always be stopped."""
    if timeout is None:
        await event.wait()
        return
    handle = asyncio.get_running_loop().call_later(timeout, event.set)
    try:
        await event.wait()
    finally:
        handle.cancel()


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait for it to end; a cancellation of the caller still propagates."""
    if task is None:
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
