"""The data tier's command lines as data: what each server is started with."""

from pathlib import Path

from lab.emulation import databases as db


def test_a_galera_node_has_every_setting_on_its_command_line():
    argv = db.galera_argv("dc1-srv2", "10.1.0.12", Path("/s/dc1-srv2"),
                          ["10.1.0.12", "10.2.0.12"], bootstrap=True)
    assert argv[:2] == ["/usr/sbin/mariadbd", "--no-defaults"]       # no my.cnf of the machine
    assert "--wsrep-cluster-address=gcomm://10.1.0.12,10.2.0.12" in argv
    assert "--bind-address=10.1.0.12" in argv and "--wsrep-node-address=10.1.0.12" in argv
    assert "--socket=/s/dc1-srv2/mysqld.sock" in argv and argv[-1] == "--wsrep-new-cluster"
    # its own temporary folder, for the server and its install alike (never the shared /tmp)
    assert "--tmpdir=/s/dc1-srv2.tmp" in argv
    assert "--tmpdir=/s/dc1-srv2.tmp" in db.galera_install_argv(Path("/s/dc1-srv2"))
    options = next(a for a in argv if a.startswith("--wsrep-provider-options="))
    assert "evs.suspect_timeout=PT1S" in options and "ignore_quorum" not in options
    joiner = db.galera_argv("dc2-srv2", "10.2.0.12", Path("/s/x"), ["10.1.0.12"])
    assert "--wsrep-new-cluster" not in joiner
    reckless = db.galera_argv("dc2-srv2", "10.2.0.12", Path("/s/x"), ["10.1.0.12"],
                              quorum=False)
    assert "pc.ignore_quorum=true" in next(a for a in reckless
                                           if a.startswith("--wsrep-provider-options="))


def test_garbd_joins_the_same_group_with_the_same_timeouts():
    argv = db.garbd_argv(["10.1.0.12", "10.2.0.12"], Path("/s/garbd.log"))
    assert argv[0] == "garbd" and "--daemon" not in argv            # foreground: its PID is ours
    assert argv[argv.index("--address") + 1] == "gcomm://10.1.0.12:4567,10.2.0.12:4567"
    assert argv[argv.index("--group") + 1] == db.CLUSTER
    assert argv[argv.index("--options") + 1] == db.GALERA_OPTIONS


def test_synchronous_standby_names_lists_every_sync_standby():
    assert db.sync_names((("dc2-srv2", "sync"), ("dc3-srv1", "async"))) == 'FIRST 1 ("dc2-srv2")'
    assert db.sync_names((("a", "sync"), ("b", "sync"))) == 'FIRST 2 ("a", "b")'
    assert db.sync_names((("dc2-srv2", "async"),)) == ""              # no waiting at all


def test_postgres_runs_as_its_own_user_with_its_socket_outside_the_data_directory():
    bindir = Path("/usr/lib/postgresql/15/bin")
    argv = db.pg_primary_argv(bindir, Path("/s/p/data"), "10.1.0.12", Path("/s/p/run"),
                              (("dc2-srv2", "sync"),))
    assert argv[:5] == ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    settings = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-c")
    assert settings["listen_addresses"] == "10.1.0.12"
    # a socket's lock file inside the data directory would be copied to the standby by
    # pg_basebackup, and the standby would refuse to start
    assert settings["unix_socket_directories"] == "/s/p/run"
    assert settings["synchronous_standby_names"] == 'FIRST 1 ("dc2-srv2")'
    standby = db.pg_standby_argv(bindir, Path("/s/q/data"), "10.2.0.12", Path("/s/q/run"),
                                 "10.1.0.12", "dc2-srv2")
    conninfo = next(a for a in standby if a.startswith("primary_conninfo="))
    assert "host=10.1.0.12" in conninfo and "application_name=dc2-srv2" in conninfo


def test_a_topology_without_a_data_tier_says_so():
    from types import SimpleNamespace
    import pytest
    from lab.errors import LabError
    from lab.model.topology import load_topology
    tier = db.DataTier(SimpleNamespace(topo=load_topology("dual-active")))
    with pytest.raises(LabError, match="dual-active has no data tier; add a data: section"):
        tier.start()


def test_the_apps_line_protocol_reads_back():
    from lab.agents import dataapp
    assert dataapp.parse_request("W client1 42\n") == ("W", "client1", 42)
    assert dataapp.parse_request("R client1") == ("R", "client1", None)
    for bad in ("", "W client1", "W client1 x", "X a b", "W a 1 2"):
        assert dataapp.parse_request(bad) is None, bad
    assert dataapp.parse_reply("OK 42 dc1-srv1 3.250") == {"ok": True, "seq": 42,
                                                           "server": "dc1-srv1",
                                                           "commit_ms": 3.25}
    err = dataapp.parse_reply("ERR 43 dc2-srv1 WSREP has not yet prepared node")
    assert err == {"ok": False, "seq": 43, "server": "dc2-srv1",
                   "reason": "WSREP has not yet prepared node"}
    for bad in ("", "OK", "OK x dc1", "MAYBE 1 dc1", "OK 1 dc1 fast"):
        assert dataapp.parse_reply(bad) is None, bad


def test_the_writer_keeps_a_ledger_of_every_write_across_a_broken_connection(tmp_path):
    """On loopback, an app stand-in of the test's own: it answers OK, ERR for every tenth
    write, and drops the first connection after 30 writes (a failover); the writer reconnects
    and every write sent is in the ledger with its fate."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import threading
    from lab.agents import dataapp

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen = []

    def app():
        for n in range(2):
            conn, _ = listener.accept()
            with conn, conn.makefile("rwb") as f:
                for line in f:
                    _, client, seq = dataapp.parse_request(line.decode())
                    seen.append((n, seq))
                    if n == 0 and len(seen) == 30:
                        break                     # drop the connection unanswered
                    reply = (f"ERR {seq} app{n} no quorum" if seq % 10 == 0
                             else f"OK {seq} app{n} 1.500")
                    f.write((reply + "\n").encode())
                    f.flush()

    threading.Thread(target=app, daemon=True).start()
    out = tmp_path / "w.json"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run(dataapp.write_argv("127.0.0.1", port, "c1", 100, 1.0, out,
                                             wait_go=False), env=env, capture_output=True,
                          text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    ledger = json.loads(out.read_text())
    writes = ledger["writes"]
    assert 95 <= len(writes) <= 105 and [w["seq"] for w in writes] == list(range(1, len(writes) + 1))
    assert ledger["connections"] == 2
    lost = [w for w in writes if not w["t_ack"] and not w["error"]]
    # in flight when the connection broke: 30, and any sent before the writer saw it close
    assert [w["seq"] for w in lost] == list(range(30, 30 + len(lost))) and 1 <= len(lost) <= 5
    errors = [w for w in writes if w["error"]]
    assert all(w["seq"] % 10 == 0 for w in errors) and len(errors) >= 8
    acked = [w for w in writes if w["t_ack"]]
    assert {w["server"] for w in acked} == {"app0", "app1"}
    assert all(w["commit_ms"] == 1.5 and w["t_ack"] >= w["t_sent"] for w in acked)


def test_a_scratch_disk_too_small_for_the_data_tier_is_refused_in_one_line(tmp_path,
                                                                          monkeypatch):
    import pytest
    import shutil
    from collections import namedtuple
    from lab.errors import LabError
    from lab.model.topology import load_topology
    spec = load_topology("dual-active-data").data                  # 2 nodes and garbd
    monkeypatch.setenv("ACTIVELAB_SCRATCH", str(tmp_path / "not-yet" / "made"))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(0, 0, 300 << 20))
    with pytest.raises(LabError, match=r"not-yet/made: 300 MB free, the data tier needs about "
                                       r"410 MB; free the disk or set ACTIVELAB_SCRATCH"):
        db.check_space(spec)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(0, 0, 500 << 20))
    db.check_space(spec)                                            # enough: no error


def test_etcd_members_know_each_other_and_listen_only_on_their_lab_address():
    members = {"dc1-srv2": "10.1.0.12", "dc2-srv2": "10.2.0.12", "dc3-srv1": "10.3.0.11"}
    argv = db.etcd_argv("dc2-srv2", "10.2.0.12", Path("/s/e"), members)
    assert argv[0] == "etcd" and argv[argv.index("--name") + 1] == "dc2-srv2"
    assert argv[argv.index("--initial-cluster") + 1] == (
        "dc1-srv2=http://10.1.0.12:2380,dc2-srv2=http://10.2.0.12:2380,"
        "dc3-srv1=http://10.3.0.11:2380")
    assert argv[argv.index("--listen-client-urls") + 1] == "http://10.2.0.12:2379"
    assert not any("0.0.0.0" in a or "127.0.0.1" in a for a in argv)


def test_patroni_configuration_keeps_its_own_timing_rule_and_the_lab_settings():
    import yaml
    config = db.patroni_config("dc2-srv2", "10.2.0.12", Path("/s/d"), Path("/s/r"),
                               ["10.1.0.12", "10.2.0.12", "10.3.0.11"], Path("/usr/lib/pg/bin"),
                               True, Path("/s/pgpass"))
    dcs = config["bootstrap"]["dcs"]
    assert dcs["ttl"] >= 20 and dcs["loop_wait"] >= 1 and dcs["retry_timeout"] >= 3
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]     # Patroni's rule
    assert dcs["synchronous_mode"] is True
    assert config["etcd3"]["hosts"] == ["10.1.0.12:2379", "10.2.0.12:2379", "10.3.0.11:2379"]
    assert config["postgresql"]["listen"] == "10.2.0.12:5432"
    assert config["postgresql"]["parameters"]["unix_socket_directories"] == "/s/r"
    assert dcs["postgresql"]["parameters"]["wal_sender_timeout"] == "2s"
    assert "password" not in yaml.safe_dump(config)                    # trust, no secrets
    assert db.patroni_argv(Path("/s/p.yml"))[-2:] == ["patroni", "/s/p.yml"]
    assert db.patroni_argv(Path("/s/p.yml"))[0] == "setpriv"          # as postgres, not root
    asynchronous = db.patroni_config("a", "10.1.0.12", Path("/d"), Path("/r"), [], Path("/b"),
                                     False, Path("/p"))
    assert asynchronous["bootstrap"]["dcs"]["synchronous_mode"] is False


def test_the_same_postgresql_settings_under_a_runbook_or_patroni():
    argv = db.pg_common(Path("/d"), "10.1.0.12", Path("/r"))
    for key, value in db.PG_PARAMETERS.items():
        assert f"{key}={value}" in argv
