"""Running probe streams and iperf3 timelines inside a lab, and collecting their raw samples.

A ProbeSet starts one receiver per destination host (lab/agents/probestream.py receive) and one
paced sender per stream; an IperfTimeline runs iperf3 with -J and 0.5 s intervals. Both
write raw files into the run folder; collect() returns the samples.
"""

import csv
import json
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from lab.agents import probestream
from lab.emulation import network, traffic

PROBE_PORT = 7000


def preload():
    """Load scapy (the probe frames are built with it, ~0.4 s) in a background thread, while
    the caller waits on something else: the streams then start at once."""
    threading.Thread(target=probestream.load_scapy, name="load-scapy", daemon=True).start()


@dataclass
class Stream:
    stream: int
    name: str
    src: str
    dst_ip: str
    dscp: int = 0


class ProbeSet:
    def __init__(self, lab, run_dir, gateway_mac, rate=1000.0, port=PROBE_PORT):
        self.lab, self.run_dir, self.gateway_mac = lab, run_dir, gateway_mac
        self.rate, self.port = rate, port
        self.streams, self.receivers, self.senders = [], {}, []
        self.unready, self.spawned_for = [], None     # receivers start() waits for; duration
        self.start_time = None
        self.dir = run_dir / "probes"
        self.dir.mkdir(exist_ok=True)

    def add(self, name, src, dst_ip, dscp=0):
        self.streams.append(Stream(len(self.streams) + 1, name, src, str(dst_ip), dscp))

    def start_receivers(self, hosts, wait=True):
        """A receiver in each of `hosts`; wait=False: start() waits for them to be ready (they
        get ready while the caller starts other things)."""
        started = []
        for host in hosts:
            out = self.dir / f"rx-{host}.csv"
            proc = self.lab.start_agent(host, probestream.receive_argv(self.port, host, out),
                                        f"probe receiver in {host}",
                                        log=self.dir / f"rx-{host}.log", wait=False)
            self.receivers[host] = (proc, out)
            started.append(proc)
        if wait:
            self.lab.wait_agents(started)
        else:
            self.unready += started

    def spawn_senders(self, duration):
        """Start every sender, each waiting for start()'s go: spawned early, they start up (a
        Python process each, its frame built here) while the caller does other work."""
        for s in self.streams:
            host = self.lab.topo.host(s.src)
            argv = probestream.send_argv(host.intf, host.mac, self.gateway_mac, host.ip.ip,
                                         s.dst_ip, self.port, s.stream, self.rate, duration,
                                         self.dir / f"tx-{s.stream}.json", wait_go=True,
                                         dscp=s.dscp, prebuilt=True)
            self.senders.append(self.lab.start_agent(
                s.src, argv, f"probe sender {s.name}", log=self.dir / f"tx-{s.stream}.log",
                stdin=subprocess.PIPE, wait=False))
        self.spawned_for = duration

    def start(self, duration):
        """Every sender starts sending (spawned first unless spawn_senders was called); returns
        the common start time (CLOCK_REALTIME)."""
        if not self.senders:
            self.spawn_senders(duration)
        elif self.spawned_for != duration:
            raise ValueError(f"senders spawned for {self.spawned_for} s, started for {duration} s")
        self.lab.wait_agents(self.unready + self.senders)
        self.unready = []
        self.start_time = network.go(self.senders)   # every sender starts now: time zero
        return self.start_time

    def received_so_far(self):
        """Probes received so far (all streams), from the receivers' files."""
        total = 0
        for _, out in self.receivers.values():
            try:
                with open(out) as fh:
                    total += sum(1 for _ in fh) - 1
            except OSError:
                pass
        return max(total, 0)

    def live_loss(self, now, lag=0.6):
        """Share of probes missing so far (allowing `lag` s for flushing and delay)."""
        expected = self.rate * len(self.streams) * max(now - self.start_time - lag, 0)
        return max(0.0, 1 - self.received_so_far() / expected) if expected > 100 else 0.0

    def in_flight_s(self):
        """How long the last probes may still be on their way: 0.1 s of queues and hosts plus
        every link's delay (no path is longer), at most 0.3 s."""
        return min(0.3, 0.1 + sum(l.delay_ms for l in self.lab.topo.links) / 1000)

    def collect(self, timeout=30):
        """Wait for the senders, stop the receivers; return (rows, summaries by stream)."""
        for proc in self.senders:
            proc.wait(timeout)
        time.sleep(self.in_flight_s())               # the last probes are still in flight
        self.lab.stop_processes([proc for proc, _ in self.receivers.values()])
        rows = []
        for _, out in self.receivers.values():
            with open(out, newline="") as fh:
                for row in csv.DictReader(fh):
                    rows.append((int(row["stream"]), int(row["seq"]), float(row["sent"]),
                                 float(row["received"]), row["host"]))
        summaries = {}
        for s in self.streams:
            summaries[s.stream] = json.loads((self.dir / f"tx-{s.stream}.json").read_text())
        return rows, summaries


class IperfTimeline:
    """iperf3 -J at a fixed rate for the whole timeline: throughput every 0.5 s."""

    def __init__(self, lab, run_dir, name, src, dst_hosts, dst_ip, mbit, port):
        self.lab, self.run_dir, self.name = lab, run_dir, name
        self.src, self.dst_hosts, self.dst_ip = src, dst_hosts, dst_ip
        self.mbit, self.port = mbit, port
        self.servers, self.client = [], None

    def listen(self):
        """Start the servers and wait until they listen (start() does it when not done)."""
        for host in self.dst_hosts:
            self.servers.append(self.lab.popen(host, ["iperf3", "-s", "-p", str(self.port)],
                                               f"iperf3 server in {host}"))
        for host in self.dst_hosts:
            traffic.wait_listening(self.lab, host, self.port)

    def start(self, duration):
        if not self.servers:
            self.listen()
        argv = traffic.iperf3_client_argv(self.dst_ip, duration, self.port, omit=0) + [
            "-b", f"{self.mbit:g}M"]
        self.t_launch = time.time()      # iperf3's own start stamp has whole seconds only
        self.client = self.lab.popen(self.src, argv, f"iperf3 {self.name}", stdout=subprocess.PIPE)

    def collect(self, timeout=3):
        """(timeline [(absolute start s, Mbit/s)], raw JSON text).

        A flow that stalled (its path was down) is still running: SIGINT makes iperf3 end the
        test and print its JSON report of what it measured."""
        try:
            out, _ = self.client.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.client.send_signal(signal.SIGINT)
            try:
                out, _ = self.client.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                self.lab.stop_process(self.client)
                out = ""
        for proc in self.servers:
            self.lab.stop_process(proc)
        (self.run_dir / f"iperf3-{self.name}.json").write_text(out or "")
        try:
            report = json.loads(out)
        except ValueError:
            return [], out
        timeline = [(self.t_launch + iv["sum"]["start"], iv["sum"]["bits_per_second"] / 1e6)
                    for iv in report.get("intervals", [])]
        return timeline, out
