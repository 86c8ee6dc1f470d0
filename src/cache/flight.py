"""Single flight in one process: concurrent callers of one key share the outcome of one run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def single_flight[T](inflight: dict[str, asyncio.Future[T]], key: str, run: Callable[[], Awaitable[T]]) -> T:
    """Run `run` unless a run for `key` is in flight, in which case wait for that one's outcome."""
    running = inflight.get(key)
    if running is not None:
        return await asyncio.shield(running)
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    inflight[key] = future
    try:
        result = await run()
    except asyncio.CancelledError:
        future.cancel()
        raise
    except BaseException as err:
        future.set_exception(err)
        future.exception()  # waiters get it; with none, it must not be reported as unretrieved
        raise
    finally:
        del inflight[key]
    future.set_result(result)
    return result
