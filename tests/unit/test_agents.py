"""Agents (programs of ours that run inside lab hosts): each command line is built beside its
parser and parses back to what was asked; starting one waits for its 'ready' and fails loudly."""

import subprocess
import sys
from pathlib import Path

import pytest

from controllers import main as controller_main
from lab import sh
from lab.agents import craftsessions, dataapp, delayline, fwprobes, gslb, probestream, service, sessions, standby
from lab.errors import LabError
from lab.emulation.network import go, wait_agents


def parsed(module, argv):
    assert argv[:3] == [sys.executable, "-m", module.__name__]
    return vars(module.parser().parse_args(argv[3:]))


def test_python_module_argv_rules():
    argv = sh.python_module("m", "cmd", a_b=1, rate=2.0, x=None, flag=True, off=False,
                            many=["p", "q"], python="py")
    assert argv == ["py", "-m", "m", "cmd", "--a-b", "1", "--rate", "2", "--flag",
                    "--many", "p", "--many", "q"]


@pytest.mark.parametrize("module, argv, expected", [
    (service, service.serve_argv("dc1-srv1", 8080), {"command": "serve", "name": "dc1-srv1", "port": 8080}),
    (service, service.query_argv("10.200.0.10", 80, 0.5),
     {"command": "query", "ip": "10.200.0.10", "port": 80, "timeout": 0.5}),
    (probestream, probestream.send_argv("c1-eth0", "aa:bb:cc:dd:ee:01", "02:00:00:00:00:fe",
                                        "10.100.0.11", "10.200.0.10", 7000, 3, 250.0, 12.5,
                                        "/r/tx-3.json"),
     {"command": "send", "intf": "c1-eth0", "src_mac": "aa:bb:cc:dd:ee:01",
      "dst_mac": "02:00:00:00:00:fe", "src_ip": "10.100.0.11", "dst_ip": "10.200.0.10",
      "port": 7000, "stream": 3, "rate": 250.0, "duration": 12.5, "summary": "/r/tx-3.json",
      "wait_go": True, "sport": 0}),
    (probestream, probestream.receive_argv(7000, "dc1-srv1", "/r/rx.csv"),
     {"command": "receive", "port": 7000, "host": "dc1-srv1", "out": "/r/rx.csv"}),
    (sessions, sessions.serve_argv(443), {"command": "serve", "port": 443}),
    (sessions, sessions.run_argv("10.2.0.11", 443, 4, 20, "/r/s.json", connect_timeout=1.5),
     {"command": "run", "dst": "10.2.0.11", "port": 443, "count": 4, "duration": 20.0,
      "out": "/r/s.json", "connect_timeout": 1.5, "wait_go": False}),
    (sessions, sessions.run_argv("10.2.0.11", 443, 4, 20, "/r/s.json", wait_go=True),
     {"command": "run", "wait_go": True}),
    (craftsessions, craftsessions.run_argv("c1-eth0", "aa:bb:cc:dd:ee:01", "10.100.0.11",
                                           "02:00:00:00:00:fe", "10.2.0.11", 443, 3, 9, "/r/c.json"),
     {"intf": "c1-eth0", "src_ip": "10.100.0.11", "gw_mac": "02:00:00:00:00:fe",
      "dst": "10.2.0.11", "port": 443, "count": 3, "duration": 9.0, "out": "/r/c.json",
      "wait_go": False}),
    (craftsessions, craftsessions.run_argv("c1-eth0", "aa:bb:cc:dd:ee:01", "10.100.0.11",
                                           "02:00:00:00:00:fe", "10.2.0.11", 443, 3, 9, "/r/c.json",
                                           wait_go=True),
     {"wait_go": True}),
    (dataapp, dataapp.serve_argv("dc1-srv1", 80, "postgresql", ["10.1.0.12", "10.2.0.12"]),
     {"command": "serve", "name": "dc1-srv1", "port": 80, "engine": "postgresql",
      "db": ["10.1.0.12", "10.2.0.12"]}),
    (dataapp, dataapp.write_argv("10.200.0.10", 80, "client1", 50, 10, "/r/w.json"),
     {"command": "write", "dst": "10.200.0.10", "client": "client1", "rate": 50.0,
      "duration": 10.0, "out": "/r/w.json", "wait_go": True}),
    (standby, standby.standby_argv("dc2-srv1", ["10.1.0.11", "10.1.0.12"], 80, 2),
     {"name": "dc2-srv1", "watch": "10.1.0.11,10.1.0.12", "port": 80, "promotion_s": 2.0,
      "then": []}),
    (standby, standby.standby_argv("dc2-srv1", ["10.1.0.11"], 80, 2, then=dataapp.serve_argv(
        "dc2-srv1", 80, "postgresql", ["10.1.0.12", "10.2.0.12"])),
     {"name": "dc2-srv1", "then": [sys.executable, "-m", "lab.agents.dataapp", "serve",
                                   "--name", "dc2-srv1", "--port", "80", "--engine",
                                   "postgresql", "--db", "10.1.0.12", "--db", "10.2.0.12"]}),
    (gslb, gslb.serve_argv("web.lab", 5, {"dc1": "10.1.0.11", "dc2": "10.2.0.11"},
                           {"10.100.0.0/24": ["dc1", "dc2"], "10.101.0.0/24": ["dc2", "dc1"]},
                           80, "/r/g.jsonl"),
     {"command": "serve", "name": "web.lab", "ttl": 5, "sites": "dc1=10.1.0.11,dc2=10.2.0.11",
      "proximity": ["10.100.0.0/24=dc1,dc2", "10.101.0.0/24=dc2,dc1"], "check_port": 80,
      "log": "/r/g.jsonl"}),
    (gslb, gslb.client_argv(80, 10, "/r/a.json", server="10.2.0.12", name="web.lab",
                            cache_extra=3),
     {"command": "client", "server": "10.2.0.12", "name": "web.lab", "vip": None,
      "cache_extra": 3.0, "port": 80, "duration": 10.0, "out": "/r/a.json"}),
    (gslb, gslb.client_argv(80, 10, "/r/a.json", vip="10.200.0.10"),
     {"command": "client", "vip": "10.200.0.10", "server": None, "cache_extra": 0.0}),
    (fwprobes, fwprobes.watch_argv("fw1-eth1", "/r/l.json"),
     {"command": "watch", "intf": "fw1-eth1", "out": "/r/l.json"}),
    (fwprobes, fwprobes.send_argv("c1-eth0", "aa:bb:cc:dd:ee:01", "10.100.0.11",
                                  "02:00:00:00:00:fe", "10.2.0.11", "10.2.0.99", 443),
     {"command": "send", "dst_ip": "10.2.0.11", "spoof_ip": "10.2.0.99", "open_port": 443}),
    (delayline, delayline.line_argv([delayline.link_spec("dci-a", "a0", "a1", 2, 0.5, 1, 121, 7),
                                     delayline.link_spec("e1", "b0", "b1", 1, 0, 0, 50, 8,
                                                         "/proc/42/ns/net")], "/r"),
     {"link": [{"name": "dci-a", "intf_a": "a0", "intf_b": "a1", "delay_ms": 2.0,
                "jitter_ms": 0.5, "loss": 1.0, "limit": 121, "seed": 7, "netns": None},
               {"name": "e1", "intf_a": "b0", "intf_b": "b1", "delay_ms": 1.0, "jitter_ms": 0.0,
                "loss": 0.0, "limit": 50, "seed": 8, "netns": "/proc/42/ns/net"}],
      "stats_dir": "/r"}),
    (controller_main, controller_main.controller_argv("/r/i.json", 6653, "/r/c.log", "/r/s.json"),
     {"config": "/r/i.json", "port": 6653, "log": "/r/c.log", "status": "/r/s.json"}),
])
def test_each_agents_argv_parses_back_with_its_own_parser(module, argv, expected):
    got = parsed(module, argv)
    assert {k: got[k] for k in expected} == expected


def agent(tmp_path, code, what="test agent"):
    log = tmp_path / "agent.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=err, text=True)
    proc.agent = (what, log)
    return proc


@pytest.mark.parametrize("code, said", [
    ("import sys; sys.stderr.write('boom: no such interface\\n'); sys.exit(4)",
     "exited with code 4 (boom: no such interface)"),
    ("print('listening', flush=True); import time; time.sleep(5)",
     "said 'listening' instead of 'ready'"),
    ("import time; time.sleep(5)", "said nothing within 0.5s"),
])
def test_an_agent_that_does_not_say_ready_fails_loudly(tmp_path, code, said):
    proc = agent(tmp_path, code)
    try:
        with pytest.raises(LabError) as err:
            wait_agents([proc], timeout=0.5)
        message = str(err.value)
        assert message.startswith("test agent did not start: it ") and said in message
        assert str(tmp_path / "agent.log") in message and "\n" not in message
    finally:
        proc.kill()
        proc.wait()


def test_agents_that_say_ready_pass(tmp_path):                       # positive control
    procs = [agent(tmp_path, "import time; time.sleep(0.2); print('ready', flush=True); "
                             "time.sleep(1)") for _ in range(3)]
    try:
        wait_agents(procs, timeout=5)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_sessions_wait_for_go_before_their_duration_starts(tmp_path):
    """With --wait-go, established sessions idle until 'go' and then talk for the whole
    --duration (on loopback: an echo server of our own, a free port)."""
    import json
    import socket
    import time
    with socket.socket() as probe_sock:
        probe_sock.bind(("127.0.0.1", 0))
        port = probe_sock.getsockname()[1]
    env = dict(__import__("os").environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    server = subprocess.Popen(sessions.serve_argv(port), stdout=subprocess.PIPE, text=True,
                              env=env)
    try:
        assert server.stdout.readline().strip() == "ready"
        out = tmp_path / "s.json"
        client = subprocess.Popen(sessions.run_argv("127.0.0.1", port, 2, 0.5, out, wait_go=True),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env)
        assert client.stdout.readline().strip() == "ready"
        time.sleep(1.0)                                # longer than --duration: idle meanwhile
        assert client.poll() is None
        told = go([client])
        assert client.wait(10) == 0
    finally:
        server.terminate()
        server.wait(5)
    report = json.loads(out.read_text())
    assert report["start"] >= told and 0.5 <= report["end"] - report["start"] < 2.0
    assert [s["established"] and s["died"] is None for s in report["sessions"]] == [True, True]
    assert all(s["last_ok"] > told for s in report["sessions"])


def test_a_promoted_standby_becomes_the_command_it_was_given(tmp_path):
    """Nothing listens on the watched port: after three misses the agent promotes and execs
    the command after --, in the same process (its PID stops the application)."""
    import socket
    from lab import REPO
    with socket.socket() as sock:               # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    marker = tmp_path / "ran"
    argv = standby.standby_argv("s1", ["127.0.0.1"], port, 0, then=[
        sys.executable, "-c", f"import os; open({str(marker)!r}, 'w').write(str(os.getpid()))"])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["ready", "primary down: promoting in 0s"]
    assert marker.read_text() == str(proc.pid)


def test_a_prebuilt_probe_frame_is_the_one_the_sender_would_build():
    argv = probestream.send_argv("c1-eth0", "aa:bb:cc:dd:ee:01", "02:00:00:00:00:fe",
                                 "10.100.0.11", "10.200.0.10", 7000, 3, 250.0, 12.5,
                                 "/r/tx-3.json", dscp=46, prebuilt=True)
    args = probestream.parser().parse_args(argv[3:])
    own, offset = probestream.template(args.src_mac, args.dst_mac, args.src_ip, args.dst_ip,
                                       probestream.sport_of(3), 7000, 46)
    assert bytes.fromhex(args.frame) == bytes(own)
    assert len(own) - probestream.PROBE_SIZE == offset
    assert own[15] == 46 << 2                                 # the DSCP is in the frame
    # positive control: another stream's frame differs (its source port)
    other = probestream.send_argv("c1-eth0", "aa:bb:cc:dd:ee:01", "02:00:00:00:00:fe",
                                  "10.100.0.11", "10.200.0.10", 7000, 4, 250.0, 12.5,
                                  "/r/tx-4.json", dscp=46, prebuilt=True)
    assert probestream.parser().parse_args(other[3:]).frame != args.frame
    # without prebuilt, the sender builds it (no --frame)
    plain = probestream.send_argv("c1-eth0", "aa:bb:cc:dd:ee:01", "02:00:00:00:00:fe",
                                  "10.100.0.11", "10.200.0.10", 7000, 3, 250.0, 12.5, "/r/t.json")
    assert "--frame" not in plain
