"""The controller's adapter sends each switch the logic's messages in the order the logic made
them, from one sender per switch: no handler or timer waits on a switch, a slow switch holds
back no other, and what another greenlet sends meanwhile cannot overtake a queued burst."""

import logging
import types

from os_ken.lib import hub

from controllers.app import ActiveLabController
from controllers.ofmsg import Flow, Group


class SlowSwitch:
    """A switch whose sends take `delay` seconds each (its 16-message queue is full)."""

    def __init__(self, log, delay=0.0, fail_on=None):
        self.log, self.delay, self.fail_on, self.got = log, delay, fail_on, []

    def send_msg(self, msg):
        if self.delay:
            hub.sleep(self.delay)
        if msg is self.fail_on:
            raise ValueError("cannot serialize")
        self.got.append(msg)
        self.log.append(msg)


def fake_app():
    app = types.SimpleNamespace(outboxes={}, datapaths={}, translate=lambda dp, msg: msg,
                                logic=types.SimpleNamespace(sw=str))
    for name in ("send", "sender", "forget_queued"):
        setattr(app, name, types.MethodType(getattr(ActiveLabController, name), app))
    return app


def burst_and_timer():
    add = Group(1, 7, ((1, (("output", 1),)),))
    uses = Flow(1, 2, 1000, {"eth_dst": "02:00:00:00:00:01"}, (("group", 7),))
    modify = Group(1, 7, ((2, (("output", 2),)),), modify=True)
    return [Flow(1, 0, 1, {}), add, uses], [modify]


def settle(seconds=0.05):
    hub.sleep(seconds)


def test_a_burst_on_a_slow_switch_keeps_its_order_and_blocks_no_one():
    app, log = fake_app(), []
    burst, timer = burst_and_timer()
    app.datapaths[1] = SlowSwitch(log, delay=0.01)
    assert app.send(burst) == 3              # returns at once: nothing sent yet
    assert log == []
    app.send(timer)                          # the timer, while the burst waits
    settle()
    # the group is added before it is modified, and before the flow that uses it
    assert app.datapaths[1].got == burst + timer


def test_a_slow_switch_does_not_hold_back_another_switchs_messages():
    app, log = fake_app(), []
    burst, _ = burst_and_timer()
    other = [Flow(2, 1, 3000, {"ipv4_dst": "10.200.0.10"}, (("output", 4),))]
    app.datapaths.update({1: SlowSwitch(log, delay=0.02), 2: SlowSwitch(log)})
    app.send(burst + other)
    settle(0.2)
    assert app.datapaths[2].got == other and app.datapaths[1].got == burst
    assert log.index(other[0]) < log.index(burst[-1])   # switch 2 did not wait for switch 1


def test_without_one_sender_per_switch_the_timer_overtakes_the_burst():
    """Positive control: sending straight to the switch from two greenlets, the group's
    modification reaches it before its addition (OFPGMFC_UNKNOWN_GROUP on a real switch)."""
    burst, timer = burst_and_timer()
    log = []
    switch = SlowSwitch(log, delay=0.01)
    first = hub.spawn(lambda: [switch.send_msg(m) for m in burst])
    hub.sleep(0.005)                          # the burst is under way, blocked on the switch
    second = hub.spawn(lambda: [switch.send_msg(m) for m in timer])
    hub.joinall([first, second])
    assert log.index(timer[0]) < log.index(burst[1])


def test_stale_unknown_or_unsendable_messages_do_not_stop_a_switchs_sender(caplog):
    app, log = fake_app(), []
    burst, timer = burst_and_timer()
    app.send(burst)                           # no switch 1 yet: dropped when their turn comes
    settle()
    switch = app.datapaths[1] = SlowSwitch(log, delay=0.01, fail_on=timer[0])
    app.send(burst)
    app.forget_queued(1)                      # it reconnected: what was queued is stale
    with caplog.at_level(logging.ERROR):
        app.send(timer + burst[:1])           # the first cannot be sent; the next still is
        settle()
    assert switch.got == burst[:1] + burst[:1] or switch.got == burst[:1]
    assert timer[0] not in switch.got
    assert "cannot serialize" in caplog.text


def test_handlers_and_the_timer_take_turns_and_a_failing_handler_does_not_end_the_loop(caplog):
    import threading
    import time
    from controllers.app import serialized
    order = []

    class App:
        lock = threading.RLock()

        @serialized
        def slow(self, ev):
            order.append(("slow", "in"))
            time.sleep(0.05)
            order.append(("slow", "out"))

        @serialized
        def broken(self, ev):
            raise KeyError("dc9")

    app = App()
    first = threading.Thread(target=app.slow, args=(None,))
    first.start()
    time.sleep(0.01)
    with app.lock:                             # the timer's round waits for the handler
        order.append(("timer", "round"))
    first.join()
    assert order == [("slow", "in"), ("slow", "out"), ("timer", "round")]
    with caplog.at_level(logging.ERROR):
        assert app.broken(object()) is None    # logged, not raised into os-ken's loop
    assert "handling object failed" in caplog.text and "dc9" in caplog.text
