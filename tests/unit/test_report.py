"""The run report: tables read back from the summary, verdicts coloured, per-fault close-ups
on synthetic runs (nothing received, loss to the end, reordering), a page that only refers to
files it has and fits 1280 px."""

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lab.analysis import plots
from lab.analysis.report import (cell_class, parse_table, report_parts, write_compare_report,
                                 write_report)
from lab.analysis.results import format_table

REPO = Path(__file__).resolve().parents[2]


def test_a_format_table_reads_back_cell_for_cell():
    rows = [("dci-a", "RTT ms", "4", "3.98", "ok", "dc1-srv1->dc2-srv1, 40/40 replies"),
            ("edge-dc2", "TCP Mbit/s", "100", "", "OFF", "x")]
    text = format_table(["link", "metric", "configured", "measured", "verdict", "path"], rows)
    header, parsed, end = parse_table(text.splitlines(), 0)
    assert header == ["link", "metric", "configured", "measured", "verdict", "path"]
    assert parsed == [list(r) for r in rows] and end == 4


def test_two_tables_back_to_back_and_lines_between():
    a = format_table(["x", "y"], [(1, 2)])
    b = format_table(["p", "q"], [(3, 4), (5, 6)])
    parts = report_parts("intro line\n" + a + "\n" + b + "\nwarning: fault cut: lost\nend")
    html = "".join(parts)
    assert html.count("<table>") == 2 and html.count("<tr>") == 2 + 3
    assert "<p class='line'>intro line</p>" in html and "Warnings" in html
    assert "fault cut: lost" in html


@pytest.mark.parametrize("cell, cls", [("ok", "ok"), ("OFF", "off"), ("WRONG", "off"),
                                       ("LEAK / blocked", "off"), (">5949.29", "off num"),
                                       ("12.5", "num"), ("±0.2", "num"), ("9.79/9.79/10.49", "num"),
                                       ("UNTRUSTWORTHY", "untrust"), ("dc1-srv1", "")])
def test_verdict_cells_are_coloured_and_numbers_aligned(cell, cls):
    assert cell_class(cell) == cls


class Checker(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.refs, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if key in attrs:
                self.refs.append(attrs[key])
        if tag == "img" and ("width" in attrs and int(attrs["width"]) > 1280):
            self.errors.append("an image wider than the page")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def check_page(path):
    checker = Checker()
    checker.feed(path.read_text())
    assert checker.errors == [] and checker.stack == [], (checker.errors, checker.stack)
    for ref in checker.refs:
        assert not ref.startswith(("/", "http", "file:")), ref
        assert (path.parent / ref).exists(), ref
    css = path.read_text()
    assert "max-width:1180px" in css and "img{max-width:100%" in css
    assert "white-space:pre-wrap" in css and "overflow-wrap:anywhere" in css
    return checker


def synthetic_run(tmp_path, lose=(), reorder=False, received=True, rate=1000.0):
    """A timeline run of one stream at `rate`, a fault at t0+1 s; `lose` the seqs lost."""
    run = tmp_path / "run"
    (run / "probes").mkdir(parents=True)
    t0 = 1000.0
    n = int(2 * rate)
    rows = []
    for seq in range(n):
        if seq in lose or not received:
            continue
        sent = t0 + seq / rate
        rows.append((1, seq, sent, sent + 0.002, "dc2-srv1"))
    if reorder and len(rows) > 1100:
        rows[1050], rows[1051] = rows[1051], rows[1050]
    with open(run / "probes.csv", "w") as fh:
        fh.write("stream,seq,sent,received,host\n")
        fh.writelines(f"{a},{b},{c},{d},{e}\n" for a, b, c, d, e in rows)
    (run / "probes" / "tx-1.json").write_text(json.dumps(
        {"stream": 1, "sent": n, "start": t0, "target_rate": rate}))
    (run / "streams.json").write_text(json.dumps([{"stream": 1, "name": "dc1-srv1>dc2-srv1",
                                                   "rate": rate}]))
    (run / "faults.csv").write_text(f"at_s,fault,t\n1.0,cut dci-a,{t0 + 1.0}\n")
    (run / "metrics.json").write_text(json.dumps({
        "timeline": {"t0": t0, "duration_s": 2.0, "probe_rate": rate},
        "faults": [{"fault": "cut dci-a", "at_s": 1.0, "t": t0 + 1.0,
                    "affected": ["dc1-srv1>dc2-srv1"], "outage_ms": 20.0, "recovered": True,
                    "convergence_ms": 25.0}]}))
    (run / "controller-status.json").write_text(json.dumps({"reactions": [
        {"event": "port_down", "t_event": t0 + 1.004, "t_done": t0 + 1.011}]}))
    return plots.load_run(run)


def test_closeup_marks_the_fault_the_detection_the_reaction_and_the_first_probe_back(tmp_path):
    lost = set(range(1000, 1020))                      # 20 ms from the fault on
    data = plots.closeup_data(synthetic_run(tmp_path, lose=lost), 0)
    row = data["rows"][0]
    assert len(row["lost"]) == 20 and min(row["lost"]) == 0.0 and max(row["lost"]) == 19.0
    assert len(row["delivered"]) == 100 + 501 - 20     # -100 ... +500 ms at 1 ms
    assert data["first_back_ms"] == 20.0
    assert data["detected_ms"] == pytest.approx(4.0) and data["reacted_ms"] == pytest.approx(11.0)
    assert data["detected_by"] == "port_down"


def test_closeup_edge_cases(tmp_path):
    # nothing received: every probe of the window lost, nothing comes back
    data = plots.closeup_data(synthetic_run(tmp_path / "a", received=False), 0)
    assert data["rows"][0]["delivered"] == [] and data["first_back_ms"] is None
    assert len(data["rows"][0]["lost"]) == 601
    # loss to the end of the window: no first probe back
    data = plots.closeup_data(synthetic_run(tmp_path / "b", lose=set(range(1000, 2000))), 0)
    assert data["first_back_ms"] is None and len(data["rows"][0]["lost"]) == 501
    # reordering changes nothing: probes are placed by send time
    data = plots.closeup_data(synthetic_run(tmp_path / "c", reorder=True), 0)
    assert data["rows"][0]["lost"] == [] and data["first_back_ms"] is None
    # a stray single loss after the outage does not move the outage's end
    lose = set(range(1000, 1030)) | {1300}
    data = plots.closeup_data(synthetic_run(tmp_path / "d", lose=lose), 0)
    assert data["first_back_ms"] == 30.0


def test_closeup_figures_and_a_report_that_refers_only_to_what_it_has(tmp_path):
    run = synthetic_run(tmp_path, lose=set(range(1000, 1020)))
    paths = plots.closeups(run, run["dir"])
    assert [p.name for p in paths] == ["closeups.png", "closeup-1.png"]
    for p in paths:
        assert p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000
    (run["dir"] / "params.json").write_text('{"experiment": "dual-active"}')
    text = format_table(["t s", "fault", "outage ms", "verdict"],
                        [("1", "cut dci-a", "20.0", "ok")]) + "\nwarning: something"
    page = write_report(run["dir"], "ActiveLab dual-active", text, problems=["something"])
    checker = check_page(page)
    html = page.read_text()
    assert "verdict fail" in html and "<table>" in html
    assert checker.refs.index("closeups.png") < checker.refs.index("closeup-1.png")
    assert "ActiveLab dual-active on dual-active" not in html


def test_compare_writes_a_report_of_its_own(tmp_path):
    runs = []
    for name, outage in (("a", 12.0), ("b", 250.0)):
        run = tmp_path / name
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({"faults": [
            {"fault": "cut dci-a", "outage_ms": outage, "recovered": True}]}))
        (run / "params.json").write_text(json.dumps({"experiment": "dual-active",
                                                     "options": {"mode": "protection"}}))
        (run / "report.html").write_text("<!doctype html><html></html>")
        runs.append(run)
    png = tmp_path / "out" / "compare.png"
    png.parent.mkdir()
    png.write_bytes(b"\x89PNG")
    page = write_compare_report(png, runs)
    check_page_refs = Checker()
    check_page_refs.feed(page.read_text())
    assert check_page_refs.errors == []
    for ref in check_page_refs.refs:
        assert (page.parent / ref).exists(), ref
    assert "12.0" in page.read_text() and "250.0" in page.read_text()


def test_a_design_runs_power_off_up_close(tmp_path):
    """compare-designs and the one-design experiments: the power-off of each design drawn
    from its folder (design.json, probes, streams), the site it hit on the topology."""
    from lab.model.topology import load_topology
    run = synthetic_run(tmp_path, lose=set(range(1000, 1048)))["dir"]
    (run / "streams.json").write_text(json.dumps([{"stream": 1, "name": "client1>web",
                                                   "rate": 1000.0}]))
    (run / "design.json").write_text(json.dumps({
        "design": "dual-active", "t0": 1000.0, "t_fault": 1001.0, "fault_site": "dc1",
        "topology": load_topology("two-region").to_dict()}))
    paths = plots.design_closeups(run, {"clients_hit": ["client1"], "rto_ms": 48.0})
    assert [p.name for p in paths] == ["closeups.png", "closeup-1.png", "topology-faults.png"]
    data = plots.closeup_data(plots.load_run(run) | {"metrics": {
        "faults": [{"fault": "power-off dc1", "at_s": 1.0, "t": 1001.0,
                    "affected": ["client1>web"], "outage_ms": 48.0, "recovered": True}],
        "timeline": {"t0": 1000.0}}}, 0)
    assert data["first_back_ms"] == 48.0
    assert plots.design_closeups(tmp_path / "nothing", {}) == []
