"""The Python router's choice of dyno alone, without sockets: random among the dynos below 50
requests in flight, each tried once per request, quarantine, the backlog (router.balancer)."""

import asyncio
import time

from dynosim.router.balancer import Balancer
from dynosim.router.wire import BACKLOG_PER_DYNO, CONNECTIONS_PER_DYNO


def balancer(*keys: str) -> Balancer:
    made = Balancer()
    for n, key in enumerate(keys, 1):
        made.add(key, "10.0.0.1", 5000 + n, f"web.{n}")
    return made


def test_a_request_tries_each_dyno_once_then_gets_none():
    dynos = balancer("a", "b")
    tried: set[str] = set()
    for _ in range(2):
        picked = dynos.pick(tried)
        assert picked in {"a", "b"} - tried
        tried.add(picked)
    assert dynos.pick(tried) == ""


def test_a_quarantined_dyno_is_avoided_unless_every_dyno_is():
    dynos = balancer("a", "b")
    assert dynos.pick({"b"}) == "a"
    dynos.refused("a")  # (it gives the slot back)
    assert {dynos.pick(set()) for _ in range(20)} == {"b"}
    dynos.refused("b")
    assert dynos.pick(set()) in {"a", "b"}  # a first attempt still tries one
    assert dynos.pick({"a"}) == ""  # a retry does not


def test_a_dyno_with_50_requests_in_flight_takes_no_more_until_one_ends():
    dynos = balancer("a")
    for _ in range(CONNECTIONS_PER_DYNO):
        assert dynos.pick(set()) == "a"
    assert dynos.pick(set()) is None
    dynos.free("a")
    assert dynos.pick(set()) == "a"


def test_a_freed_slot_goes_to_the_request_waiting_longest():
    async def scenario():
        dynos = balancer("a")
        for _ in range(CONNECTIONS_PER_DYNO):
            dynos.pick(set())
        deadline = time.monotonic() + 60
        first = asyncio.ensure_future(dynos.wait_for_slot(deadline))
        second = asyncio.ensure_future(dynos.wait_for_slot(deadline))
        await asyncio.sleep(0)
        dynos.free("a")
        assert await first is None
        assert not second.done()
        second.cancel()

    asyncio.run(scenario())


def test_the_backlog_holds_50_requests_per_dyno_then_h11():
    async def scenario():
        dynos = balancer("a")
        for _ in range(CONNECTIONS_PER_DYNO):
            dynos.pick(set())
        deadline = time.monotonic() + 60
        waiting = [
            asyncio.ensure_future(dynos.wait_for_slot(deadline)) for _ in range(BACKLOG_PER_DYNO)
        ]
        await asyncio.sleep(0)
        assert await dynos.wait_for_slot(deadline) == "H11"
        for waiter in waiting:
            waiter.cancel()

    asyncio.run(scenario())


def test_the_backlog_answers_h12_at_the_deadline():
    async def scenario():
        dynos = balancer("a")
        for _ in range(CONNECTIONS_PER_DYNO):
            dynos.pick(set())
        return await dynos.wait_for_slot(time.monotonic())

    assert asyncio.run(scenario()) == "H12"


def test_a_removed_dyno_keeps_its_name_until_its_last_request_ends():
    dynos = balancer("a")
    assert dynos.pick(set()) == "a"
    dynos.remove("a")
    assert dynos.keys == () and dynos.busy("a")
    assert dynos.name("a") == "web.1"
    dynos.free("a")
    assert not dynos.busy("a")
    assert dynos.name("a") == "a"
