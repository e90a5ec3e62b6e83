"""The delay line's forwarding logic, driven with fake sockets (no root needed)."""

import random

import pytest

from lab.agents import delayline


class FakeSocket:
    def __init__(self):
        self.inbox = []          # (frame, pkttype)
        self.sent = []

    def recvmsg(self, size, ancsize):
        if not self.inbox:
            raise BlockingIOError
        frame, pkttype = self.inbox.pop(0)
        return frame, [], 0, ("if", 3, pkttype, 1, b"")

    def send(self, frame):
        self.sent.append(frame)

    def getsockopt(self, level, name, size):
        raise OSError("not a packet socket")


class Wire(delayline.Wire):
    """A wire with its directions addressable by receiving socket, as the tests use them."""

    @property
    def by_rx(self):
        return {d.rx: d for d in self.directions}


def make_line(delay_ms=2.0, jitter_ms=0.0, loss=0.0, limit=1000, seed=1):
    a, b = FakeSocket(), FakeSocket()
    wire = Wire("w", a, b, "a", "b", delay_ms, jitter_ms, loss, limit, seed)
    wire.directions_by = wire.by_rx
    return wire, a, b


def test_frames_leave_after_the_delay_in_order(monkeypatch):
    line, a, b = make_line(delay_ms=2.0)
    monkeypatch.setattr(delayline.time, "time", lambda: 10.0)
    a.inbox = [(b"f1", 0), (b"f2", 0)]
    line.receive(line.directions_by[a])
    line.send_due(line.directions_by[a], 10.0019)
    assert b.sent == []
    line.send_due(line.directions_by[a], 10.002)
    assert b.sent == [b"f1", b"f2"]
    assert a.sent == []


def test_own_outgoing_frames_are_not_forwarded_back():
    line, a, b = make_line()
    a.inbox = [(b"echo", delayline.PACKET_OUTGOING), (b"real", 0)]
    line.receive(line.directions_by[a])
    assert [f for _, f in line.directions_by[a].queue] == [b"real"]


def test_loss_drops_about_the_configured_share():
    line, a, b = make_line(loss=10.0, seed=3, limit=100000)
    a.inbox = [(b"x", 0)] * 10000
    line.receive(line.directions_by[a])
    lost = line.directions_by[a].counters["lost"]
    assert 850 <= lost <= 1150
    assert len(line.directions_by[a].queue) == 10000 - lost


def test_queue_limit_tail_drops():
    line, a, b = make_line(limit=5)
    a.inbox = [(bytes([i]), 0) for i in range(8)]
    line.receive(line.directions_by[a])
    assert len(line.directions_by[a].queue) == 5
    assert line.directions_by[a].counters["overflow"] == 3


def test_jitter_stays_within_bounds_and_never_reorders():
    rng = random.Random(5)
    for spacing in (0.0001, 0.01):          # dense: order is kept; sparse: jitter shows freely
        check_jitter(rng, spacing)


def check_jitter(rng, spacing):
    last, dues = 0.0, []
    for i in range(2000):
        now = i * spacing
        due = delayline.due_time(now, 0.005, 0.002, rng, last)
        assert due >= now + 0.003 - 1e-12 and due <= max(now + 0.007, last) + 1e-12
        assert due >= last
        last = due
        dues.append(due - now)
    if spacing > 0.004:
        assert max(dues) - min(dues) > 0.003      # jitter really varies the delay
        assert sum(dues) / len(dues) == pytest.approx(0.005, abs=0.0002)


def test_kernel_receive_timestamp_starts_the_clock():
    import struct
    anc = [(delayline.socket.SOL_SOCKET, delayline.SO_TIMESTAMPNS, struct.pack("qq", 12, 500000000))]
    assert delayline.kernel_time(anc, 99.0) == 12.5
    assert delayline.kernel_time([], 99.0) == 99.0


def test_gray_failure_drops_everything_until_it_ends():
    line, a, b = make_line()
    line.gray = True
    a.inbox = [(b"x", 0)] * 10
    line.receive(line.directions_by[a])
    assert not line.directions_by[a].queue and line.directions_by[a].counters["grayed"] == 10
    line.gray = False
    a.inbox = [(b"y", 0)]
    line.receive(line.directions_by[a])
    assert len(line.directions_by[a].queue) == 1


def test_one_process_serves_several_wires_and_takes_commands_per_wire(monkeypatch):
    monkeypatch.setattr(delayline.time, "time", lambda: 10.0)
    first, a1, b1 = make_line(delay_ms=2.0)
    second, a2, b2 = make_line(delay_ms=5.0)
    second.name = "other"
    line = delayline.DelayLine([first, second])
    assert line.command("gray other on") == "gray other on"
    assert second.gray and not first.gray
    assert line.command("delay w 7.5") == "delay w 7.5"
    assert first.delay == 0.0075 and second.delay == 0.005
    for bad in ("gray nowhere on", "gray w maybe", "delay w soon", "reboot w"):
        assert line.command(bad).startswith("error: unknown command")
    a1.inbox, a2.inbox = [(b"f", 0)], [(b"g", 0)]
    wire, direction = line.by_socket[a1]
    wire.receive(direction)
    wire, direction = line.by_socket[a2]
    wire.receive(direction)
    assert [f for _, f in first.directions_by[a1].queue] == [b"f"]
    assert second.directions_by[a2].counters["grayed"] == 1
    stats, _ = line.stats()
    assert set(stats) == {"w", "other"}


@pytest.mark.parametrize("text", ["dci-a:a0:a1:2:0:0:100", "dci-a:a0:a1:x:0:0:100:1",
                                  "dci-a:a0:a1:2:0:101:100:1", "dci-a:a0:a1:2:0:0:0:1"])
def test_a_bad_link_spec_is_refused_by_name(text):
    import argparse
    with pytest.raises(argparse.ArgumentTypeError, match="--link"):
        delayline.parse_link(text)
