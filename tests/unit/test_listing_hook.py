"""The Scheduler's change counter (actors/listing_hook.py): a long poll that returns as soon as the
counter moves, and a restarted counter that never repeats an old value."""

import asyncio

from actors.listing_hook import ChangeCounter


def test_a_waiter_returns_when_the_counter_moves():
    async def main():
        counter = ChangeCounter()
        seen = counter.value
        waiter = asyncio.create_task(counter.wait(seen, timeout=30))
        await asyncio.sleep(0.05)
        assert not waiter.done()  # nothing changed: it waits
        counter.bump()
        assert await asyncio.wait_for(waiter, 5) == seen + 1
        # a reader behind (or new) gets the value at once; one up to date waits out the timeout
        assert await counter.wait(seen, timeout=30) == seen + 1
        assert await counter.wait(None, timeout=30) == seen + 1
        assert await counter.wait(seen + 1, timeout=0.05) == seen + 1

    asyncio.run(main())


def test_a_new_counter_starts_past_an_old_one():
    old = ChangeCounter()
    for _ in range(1000):
        old.bump()
    assert ChangeCounter().value > old.value  # nanoseconds go faster than bumps
