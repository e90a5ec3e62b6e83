"""The controller's adapter sends each switch the logic's messages in the order the logic made
them, even when another greenlet (the timer) sends while a burst is blocked on a full switch
queue; and a blocked switch does not hold back the others."""

import collections
import types

from controllers.app import ActiveLabController
from controllers.ofmsg import Flow, Group


class BlockingSwitch:
    """A switch whose first send blocks, and while it blocks the timer greenlet sends (what
    eventlet does when a datapath's 16-message queue is full)."""

    def __init__(self, app, meanwhile):
        self.app, self.meanwhile, self.got = app, meanwhile, []

    def send_msg(self, msg):
        self.got.append(msg)
        if self.meanwhile:
            late, self.meanwhile = self.meanwhile, None
            self.app.send(late)            # the timer's messages, sent while we "block"


def fake_app():
    app = types.SimpleNamespace(outboxes={}, draining=set(), datapaths={},
                                translate=lambda dp, msg: msg)
    app.send = types.MethodType(ActiveLabController.send, app)
    app.drain = types.MethodType(ActiveLabController.drain, app)
    return app


def burst_and_timer():
    add = Group(1, 7, ((1, (("output", 1),)),))
    uses = Flow(1, 2, 1000, {"eth_dst": "02:00:00:00:00:01"}, (("group", 7),))
    modify = Group(1, 7, ((2, (("output", 2),)),), modify=True)
    first = Flow(1, 0, 1, {})
    return [first, add, uses], [modify]


def test_a_burst_blocked_on_a_switch_keeps_its_order_before_the_timers_messages():
    app = fake_app()
    burst, timer = burst_and_timer()
    switch = BlockingSwitch(app, timer)
    app.datapaths[1] = switch
    assert app.send(burst) == 3
    # the group is added before it is modified, and before the flow that uses it
    assert switch.got == burst + timer
    assert not any(app.outboxes.values()) and not app.draining


def test_a_switch_blocked_on_a_burst_does_not_hold_back_another_switchs_messages():
    app = fake_app()
    burst, _ = burst_and_timer()
    other = [Flow(2, 1, 3000, {"ipv4_dst": "10.200.0.10"}, (("output", 4),))]
    switch1 = BlockingSwitch(app, other)            # while 1 blocks, switch 2's flow is sent
    switch2 = BlockingSwitch(app, None)
    app.datapaths.update({1: switch1, 2: switch2})
    log = []
    for switch in (switch1, switch2):
        record = switch.send_msg
        switch.send_msg = (lambda record: lambda msg: (log.append(msg), record(msg)))(record)
    app.send(burst)
    assert switch2.got == other and switch1.got == burst
    # switch 2's flow went out while switch 1's burst waited, not after all of it
    assert log.index(other[0]) < log.index(burst[-1])


def test_without_the_outbox_the_timer_would_overtake_the_burst():
    """Positive control: sending straight to the switch, the modification of the group
    reaches it before its addition (OFPGMFC_UNKNOWN_GROUP on a real switch)."""
    burst, timer = burst_and_timer()
    got = []

    class Direct:
        meanwhile = timer

        def send_msg(self, msg):
            got.append(msg)
            if self.meanwhile:
                late, self.meanwhile = self.meanwhile, None
                for m in late:
                    self.send_msg(m)

    switch = Direct()
    for msg in burst:
        switch.send_msg(msg)
    assert got.index(timer[0]) < got.index(burst[1])


def test_messages_for_a_switch_that_is_gone_are_dropped_and_sending_ends():
    app = fake_app()
    burst, _ = burst_and_timer()
    assert app.send(burst) == 3                    # no datapath 1: nothing to send to
    assert not any(app.outboxes.values()) and not app.draining
