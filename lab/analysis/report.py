"""A self-contained report.html in every run folder: summary, plots, parameters, platform facts.

It references only files inside the run folder (relative paths), so it opens in a browser
straight from the folder, or from a copy of it, with no server.
"""

import html
import json
from pathlib import Path


def write_report(run_dir, title, summary_text):
    """Write run_dir/report.html; returns its path."""
    run_dir = Path(run_dir)
    images = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*.png"))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "pre{background:#f4f4f4;padding:1em;overflow-x:auto;font-size:12px}"
        "img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Run folder: {html.escape(run_dir.name)}</p>",
        "<h2>Summary</h2>", f"<pre>{html.escape(summary_text)}</pre>",
    ]
    if images:
        parts.append("<h2>Plots</h2>")
        for image in images:
            parts.append(f"<h3>{html.escape(str(image))}</h3>"
                         f"<img src='{html.escape(image.as_posix())}' alt='{html.escape(str(image))}'>")
    for name, heading in (("platform.json", "Platform"), ("params.json", "Parameters")):
        path = run_dir / name
        if path.exists():
            text = json.dumps(json.loads(path.read_text()), indent=2)
            parts += [f"<h2>{heading}</h2>", f"<pre>{html.escape(text)}</pre>"]
    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    parts.append("<h2>Raw files</h2><ul>" + "".join(
        f"<li><a href='{html.escape(f)}'>{html.escape(f)}</a></li>" for f in files
        if f != "report.html") + "</ul></body></html>")
    out = run_dir / "report.html"
    out.write_text("\n".join(parts))
    return out
