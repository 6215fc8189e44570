"""HAProxy's server slots alone: which slot a dyno gets and the admin commands that set it
(router.haproxy.slots), against a stand-in for the HAProxy child."""

from dynosim.router.haproxy.slots import Slots


class Child:
    """Records the admin commands sent, a call's commands in one string as HAProxy gets them."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def command(self, *commands: str) -> None:
        self.sent.append("; ".join(commands))


def test_a_dyno_gets_a_slot_set_ready_at_its_address():
    child = Child()
    slots = Slots(child)  # type: ignore[arg-type]
    slots.add("c1", "172.18.0.5", 5000, "web.1")
    slots.add("c2", "fd00::5", 5001, None)
    assert child.sent == [
        "set server web/dyno1 addr 172.18.0.5 port 5000; set server web/dyno1 state ready",
        "set server web/dyno2 addr [fd00::5] port 5001; set server web/dyno2 state ready",
    ]
    assert (slots.slot("c1"), slots.label("dyno1"), slots.label("dyno2")) == (1, "web.1", "c2")


def test_a_removed_dynos_slot_goes_to_maintenance_and_is_reused_last():
    child = Child()
    slots = Slots(child)  # type: ignore[arg-type]
    slots.add("c1", "10.0.0.1", 5000, "web.1")
    slots.remove("c1")
    slots.remove("c1")  # a second time: nothing to do
    assert child.sent[1:] == ["set server web/dyno1 state maint"]
    assert slots.slot("c1") is None
    assert slots.label("dyno1") == "web.1"  # its requests still being logged
    slots.add("c2", "10.0.0.2", 5000, "web.2")
    assert slots.slot("c2") == 2


def test_a_new_haproxy_gets_the_dynos_servers_again():
    child = Child()
    slots = Slots(child)  # type: ignore[arg-type]
    slots.add("c1", "10.0.0.1", 5000, "web.1")
    child.sent.clear()
    slots.restore({"c1": ("10.0.0.1", 5000)})
    assert child.sent == [
        "set server web/dyno1 addr 10.0.0.1 port 5000; set server web/dyno1 state ready"
    ]
