"""A self-contained report.html in every run folder: the verdict, the run's tables as HTML
tables, its figures (the per-fault close-ups first), the topology, parameters and platform.

It references only files inside the run folder (relative paths), so it opens in a browser
straight from the folder, or from a copy of it, with no server; it is laid out for a projector
at 1280 px: nothing wider than the page (tables wrap their cells, figures scale down).

The tables are the summary's own (lab.analysis.results.format_table): report_parts() reads
them back from the text (a header line, a line of dashes, rows), so every experiment's report
gets real tables with no code of its own; verdict cells are coloured, numbers right-aligned.
The plain-text summary stays in summary.txt and the terminal.
"""

import html
import json
import re
from pathlib import Path

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1180px;padding:0 1em;
     color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.sub{color:#555;margin-top:0}
.verdict{padding:0.6em 1em;border-radius:6px;font-weight:600;margin:1em 0}
.verdict.pass{background:#e6f4ea;color:#1e6b34} .verdict.fail{background:#fde7e9;color:#a4161a}
.verdict.note{background:#fff4ce;color:#6b5200}
table{border-collapse:collapse;margin:0.6em 0 1.2em;width:100%;font-size:13px;
      table-layout:auto}
th,td{border:1px solid #ddd;padding:3px 6px;vertical-align:top;overflow-wrap:anywhere}
th{background:#f4f4f4;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.ok{background:#e6f4ea} td.off{background:#fde7e9;font-weight:600}
td.untrust{background:#fff4ce}
p.line{margin:0.3em 0} ul.warn li{color:#a4161a}
img{max-width:100%;height:auto;border:1px solid #ddd;margin:0.4em 0}
figure{margin:0.8em 0} figcaption{color:#555;font-size:13px}
pre{background:#f4f4f4;padding:0.8em;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px}
details{margin:0.5em 0}
"""

OK_WORDS = {"ok", "passed", "arrived", "kept", "healthy", "up", "live", "done", "met"}
BAD_WORDS = {"off", "wrong", "failed", "leak", "lost", "no answer", "down", "missed", "not met",
             "unreachable", "not recovered"}
NUMBER = re.compile(r"^[<>~±+-]?\d[\d,]*(\.\d+)?\s*(%|ms|s|mbit/s|mb)?$", re.IGNORECASE)
DASHES = re.compile(r"^-+(  -+)*$")


def parse_table(lines, start):
    """(header cells, rows, index after the table) of a format_table block whose header is
    lines[start] and whose dashes are lines[start + 1]; None when it is not one."""
    if start + 1 >= len(lines) or not DASHES.match(lines[start + 1]):
        return None
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[start + 1])]

    def cells(line):
        out = []
        for j, (a, _) in enumerate(spans):
            b = spans[j + 1][0] if j + 1 < len(spans) else len(line)
            out.append(line[a:b].strip())
        return out
    def fits(line):
        """A row of this table: blank where its columns are apart (a line of text after the
        table runs across those gaps)."""
        return all(len(line) <= a - 2 or line[a - 2:a] == "  " for a, _ in spans[1:])
    if not fits(lines[start]):
        return None
    rows, i = [], start + 2
    while i < len(lines) and lines[i].strip() and not DASHES.match(lines[i]) and fits(lines[i]):
        if i + 1 < len(lines) and DASHES.match(lines[i + 1]):
            break                                   # the next table's header
        rows.append(cells(lines[i]))
        i += 1
    return cells(lines[start]), rows, i


def cell_class(text):
    low = text.strip().lower()
    if "untrustworthy" in low:
        return "untrust"
    if low.startswith(">"):
        return "off num"                            # an outage that had not ended
    if low in BAD_WORDS or low.startswith(("off", "wrong", "leak", "failed")):
        return "off"
    if low in OK_WORDS:
        return "ok"
    if NUMBER.match(low.replace("/", "")) or re.match(r"^[\d.]+(/[\d.-]+)+$", low):
        return "num"
    return ""


def table_html(header, rows):
    out = ["<table><thead><tr>"] + [f"<th>{html.escape(h)}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for cell in row:
            cls = cell_class(cell)
            out.append(f"<td class='{cls}'>{html.escape(cell)}</td>" if cls
                       else f"<td>{html.escape(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def report_parts(summary_text):
    """The summary as HTML: tables for its tables, paragraphs for its lines, warnings listed."""
    lines = summary_text.splitlines()
    parts, warnings, i = [], [], 0
    while i < len(lines):
        line = lines[i]
        table = parse_table(lines, i) if line.strip() else None
        if table:
            header, rows, i = table
            parts.append(table_html(header, rows))
            continue
        if line.startswith("warning: "):
            warnings.append(line[len("warning: "):])
        elif line.strip():
            parts.append(f"<p class='line'>{html.escape(line)}</p>")
        i += 1
    if warnings:
        parts.append("<h3>Warnings</h3><ul class='warn'>"
                     + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul>")
    return parts


CAPTIONS = {
    "closeups.png": "Every fault up close: probes from 100 ms before to 500 ms after each fault, "
                    "by send time (blue delivered, red lost), with the fault, the controller's "
                    "detection and reaction, and the first delivered probe marked.",
    "delivery.png": "Probe delivery over the whole run, with the faults in force above it.",
    "topology.png": "The run's topology.",
    "topology-faults.png": "The topology at each fault: the link or site it hit marked.",
}


def figure_order(path):
    name = path.name
    if name == "closeups.png":
        return (0, name)
    if name.startswith("closeup-"):
        return (1, int(re.sub(r"\D", "", name) or 0))
    if name.startswith("topology"):
        return (3, name)
    return (2, str(path))


def write_report(run_dir, title, summary_text, problems=(), timing=(), judged=True,
                 subtitle=""):
    """Write run_dir/report.html; returns its path."""
    run_dir = Path(run_dir)
    images = sorted((p.relative_to(run_dir) for p in run_dir.rglob("*.png")),
                    key=lambda p: figure_order(p))
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class='sub'>{html.escape(subtitle or 'run ' + run_dir.name)}</p>"]
    if problems or (timing and judged):
        items = list(problems) + (list(timing) if judged else [])
        parts.append(f"<div class='verdict fail'>FAILED: {len(items)} check(s) did not pass "
                     "(listed under Warnings)</div>")
    elif timing:
        parts.append("<div class='verdict note'>Every functional check passed; timing "
                     "verdicts are reported, not judged, on this platform</div>")
    else:
        parts.append("<div class='verdict pass'>Every check passed</div>")
    parts.append("<h2>Results</h2>")
    parts += report_parts(summary_text)
    if images:
        parts.append("<h2>Figures</h2>")
        for image in images:
            caption = CAPTIONS.get(image.name, str(image))
            parts.append(f"<figure><img src='{html.escape(image.as_posix())}' "
                         f"alt='{html.escape(caption)}'><figcaption>{html.escape(caption)}"
                         "</figcaption></figure>")
    for name, heading in (("platform.json", "Platform"), ("params.json", "Parameters")):
        path = run_dir / name
        if path.exists():
            try:
                text = json.dumps(json.loads(path.read_text()), indent=2)
            except ValueError:
                text = path.read_text()
            parts.append(f"<details><summary>{heading}</summary><pre>{html.escape(text)}</pre>"
                         "</details>")
    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    parts.append("<details><summary>Raw files</summary><ul>" + "".join(
        f"<li><a href='{html.escape(f)}'>{html.escape(f)}</a></li>" for f in files
        if f != "report.html") + "</ul></details></body></html>")
    out = run_dir / "report.html"
    out.write_text("\n".join(parts))
    return out


def write_compare_report(png, run_dirs):
    """compare-report.html beside compare.png: the figure and each run's outage per fault as
    a table (from the runs' metrics.json). The runs' own reports are linked when the page can
    reach them by a relative path."""
    import os
    png = Path(png)
    rows, faults = [], []
    for run in run_dirs:
        try:
            metrics = json.loads((Path(run) / "metrics.json").read_text())
            params = json.loads((Path(run) / "params.json").read_text())
        except (OSError, ValueError):
            continue
        impacts = metrics.get("faults") or []
        for i in impacts:
            if i["fault"] not in faults:
                faults.append(i["fault"])
        by = {i["fault"]: i for i in impacts}
        options = params.get("options") or {}
        label = f"{Path(run).name} ({params.get('experiment')}, {options.get('mode', '')})"
        rows.append((label, Path(run), by))
    header = ["run"] + [f"{f} outage ms" for f in faults]
    body = []
    for label, run, by in rows:
        cells = []
        for f in faults:
            i = by.get(f)
            cells.append("-" if i is None or i.get("outage_ms") is None else
                         f"{'' if i.get('recovered', True) else '>'}{i['outage_ms']:.1f}")
        body.append([label] + cells)
    links = []
    for label, run, _ in rows:
        target = run / "report.html"
        if target.exists():
            rel = os.path.relpath(target, png.parent)
            links.append(f"<li><a href='{html.escape(rel)}'>{html.escape(label)}</a></li>")
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>ActiveLab compare</title><style>{STYLE}</style></head><body>",
             f"<h1>ActiveLab: {len(rows)} runs side by side</h1>",
             "<h2>Outage per fault</h2>", table_html(header, body),
             f"<figure><img src='{html.escape(png.name)}' alt='outage per fault, per run'>"
             "<figcaption>Outage per fault, per run.</figcaption></figure>"]
    if links:
        parts.append("<h2>The runs' own reports</h2><ul>" + "".join(links) + "</ul>")
    parts.append("</body></html>")
    out = png.with_name(png.stem + "-report.html")
    out.write_text("\n".join(parts))
    return out
