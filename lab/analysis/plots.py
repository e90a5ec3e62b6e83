"""Plots from a run folder's raw files (headless matplotlib, PNG). Rerunnable on old runs:

    python lab/run.py plot results/dual-active/<run-id>
    python lab/run.py compare results/dual-active/<run-a> results/dual-active/<run-b>

delivery.png   per stream: probes delivered per 10 ms, with the faults marked (the slide)
throughput.png iperf3 timelines (replication on the DCI, client traffic)
site_share.png share of client VIP traffic each site served, before and after each fault
compare.png    outage per fault, runs side by side (e.g. protection vs restoration)
firewall.png   sessions established over asymmetric paths and surviving failover, per remedy
designs.png    RTO, per-site utilization and sessions lost per design
gslb.png       failover time, anycast against DNS GSLB variants
commit_latency.png  replicated commit latency against the RTT between sites, per data tier
split_brain.png  writes accepted per site through a partition and its heal, per variant
rpo_rto.png    acknowledged writes lost (RPO) and time to the first write after (RTO), per
               data tier and fault
scale.png      time to a verified lab, RTO of a site power-off and CPU against the number of
               sites, mesh and ring (the scale benchmark)
"""

import csv
import json
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from lab.analysis import mpl
from lab.analysis.mpl import plt
from lab.errors import LabError

BIN = 0.025                     # delivery plot bins, s


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def load_run(run_dir):
    """The raw material of a timeline run: streams, probes, faults, throughput, metrics."""
    run_dir = Path(run_dir)
    needed = ["streams.json", "probes.csv", "faults.csv", "metrics.json"]
    missing = [n for n in needed if not (run_dir / n).exists()]
    if missing:
        raise LabError(f"{run_dir}: not a timeline run folder (missing {', '.join(missing)}); "
                       "give a folder written by lab/run.py dual-active")
    return {
        "dir": run_dir,
        "streams": json.loads((run_dir / "streams.json").read_text()),
        "probes": _read_csv(run_dir / "probes.csv"),
        "faults": _read_csv(run_dir / "faults.csv"),
        "throughput": _read_csv(run_dir / "throughput.csv") if (run_dir / "throughput.csv").exists() else [],
        "metrics": json.loads((run_dir / "metrics.json").read_text()),
        "params": json.loads((run_dir / "params.json").read_text()) if (run_dir / "params.json").exists() else {},
        "summaries": _sender_summaries(run_dir),
    }


def _sender_summaries(run_dir):
    """{stream number: the probe sender's summary} (probes/tx-*.json: start, sent, rate)."""
    out = {}
    for path in sorted((Path(run_dir) / "probes").glob("tx-*.json")):
        try:
            summary = json.loads(path.read_text())
            out[int(summary["stream"])] = summary
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def _mark_faults(ax, faults, t0, label=True):
    for fault in faults:
        t = float(fault["t"]) - t0
        ax.axvline(t, color="tab:red", linestyle="--", linewidth=0.8)
        if label:
            ax.annotate(fault["fault"], (t, 1.0), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=7, color="tab:red")


UNDO = {"cut": "heal", "gray": "ungray", "power-off": "power-on", "isolate": "rejoin",
        "server-down": "server-up", "controller-stop": "controller-start"}
FAULT_COLOURS = {"cut": "tab:red", "gray": "tab:gray", "power-off": "black", "isolate": "tab:orange",
                 "server-down": "tab:purple", "controller-stop": "tab:brown"}


def fault_spans(faults, t0, end):
    """[(start s, end s, label, colour)]: each fault from its instant to its undoing (or the
    end of the run), for the timeline strip."""
    spans = []
    for i, fault in enumerate(faults):
        action, _, target = fault["fault"].partition(" ")
        if action not in UNDO:
            continue
        start = float(fault["t"]) - t0
        stop = next((float(f["t"]) - t0 for f in faults[i + 1:]
                     if f["fault"] == f"{UNDO[action]} {target}"), end)
        spans.append((start, stop, fault["fault"], FAULT_COLOURS[action]))
    return spans


def _strip(ax, faults, t0, end):
    spans = fault_spans(faults, t0, end)
    for row, (start, stop, label, colour) in enumerate(spans):
        ax.barh(row, stop - start, left=start, color=colour, alpha=0.6, height=0.8)
        ax.text(start, row, f" {label}", va="center", ha="left", fontsize=7)
    ax.set_ylim(-0.6, max(len(spans), 1) - 0.4)
    ax.set_yticks([])
    ax.invert_yaxis()
    ax.set_title("faults in force", fontsize=8, loc="left")


def delivery(run, out):
    streams, t0 = run["streams"], run["metrics"]["timeline"]["t0"]
    end = run["metrics"]["timeline"]["duration_s"]
    spans = fault_spans(run["faults"], t0, end)
    fig, axes = plt.subplots(len(streams) + 1, 1, figsize=(10, 1.6 * len(streams) + 1.6
                                                           + 0.2 * len(spans)),
                             sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [0.4 + 0.25 * len(spans)]
                                          + [1.6] * len(streams)})
    _strip(axes[0, 0], run["faults"], t0, end)
    axes = axes[1:]
    bins = int(end / BIN) + 1
    for ax, stream in zip(axes[:, 0], streams):
        counts = [0] * bins
        for row in run["probes"]:
            if int(row["stream"]) == stream["stream"]:
                i = int((float(row["sent"]) - t0) / BIN)
                if 0 <= i < bins:
                    counts[i] += 1
        xs = [i * BIN for i in range(bins)]
        ax.fill_between(xs, [c / BIN for c in counts], step="post", color="tab:blue", alpha=0.7)
        ax.set_ylabel("pkt/s", fontsize=8)
        ax.set_title(stream["name"], fontsize=9, loc="left")
        ax.set_ylim(0, stream.get("rate", 1000) * 1.3)
        _mark_faults(ax, run["faults"], t0, label=ax is axes[0, 0])
    axes[-1, 0].set_xlabel("seconds since traffic start (by send time)")
    fig.suptitle(f"Probe delivery — {_title(run)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def throughput(run, out):
    t0 = run["metrics"]["timeline"]["t0"]
    fig, ax = plt.subplots(figsize=(10, 3.5))
    names = sorted({r["name"] for r in run["throughput"]})
    for name in names:
        rows = [r for r in run["throughput"] if r["name"] == name]
        ax.step([float(r["t"]) - t0 for r in rows], [float(r["mbit"]) for r in rows],
                where="post", label=name)
    _mark_faults(ax, run["faults"], t0)
    ax.set_xlabel("seconds since traffic start")
    ax.set_ylabel("Mbit/s")
    if names:
        ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"Throughput (iperf3, 0.5 s intervals) — {_title(run)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def site_share(run, out):
    phases = run["metrics"].get("site_share", [])
    sites = sorted({s for p in phases for s in p["share"]})
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(phases) + 2), 3.5))
    bottom = [0.0] * len(phases)
    for site in sites:
        values = [p["share"].get(site, 0.0) * 100 for p in phases]
        ax.bar(range(len(phases)), values, bottom=bottom, label=site)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(phases)))
    ax.set_xticklabels([p["phase"] for p in phases], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("% of client VIP probes")
    ax.set_ylim(0, 100)
    if sites:
        ax.legend(fontsize=8)
    ax.set_title(f"Per-site load share — {_title(run)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _title(run):
    options = run["params"].get("options", {})
    return f"{run['metrics'].get('topology', '')} {options.get('mode', '')}".strip()


def read_metrics(run_dir):
    """A run folder's metrics.json (one-line LabError when it has none)."""
    try:
        return json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        raise LabError(f"{run_dir}: no readable metrics.json; give a run folder written by "
                       "lab/run.py") from None


def _worker_signals():
    """A figure worker: Ctrl-C is for the run (it waits for the figures in hand, then stops),
    SIGTERM and SIGHUP end the worker (not the run's handler, which starts a teardown)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


_JOBS = []                      # render's jobs, inherited by its forked workers


def _run_job(index):
    function, args = _JOBS[index]
    return function(*args)


def render(jobs, workers=None):
    """Draw independent figures at once: jobs [(function, args)]; returns their results in
    order. Figures are CPU-bound (matplotlib), so each core draws one. The workers are forked
    after the jobs are set: they start with matplotlib loaded and the run's data in memory
    (nothing of it is pickled; only the results come back). A job's exception is raised here."""
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    if workers < 2 or multiprocessing.current_process().daemon:
        return [function(*args) for function, args in jobs]
    mpl.pyplot()                  # loaded before the fork: each worker has it, none loads it
    _JOBS[:] = jobs
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_worker_signals) as pool:
            return list(pool.map(_run_job, range(len(jobs))))
    finally:
        _JOBS.clear()


def _fault_panels(run):
    from lab.analysis.draw import fault_panels
    faults = [(f"{float(f['t']) - run['metrics']['timeline']['t0']:.1f} s {f['fault']}",)
              + tuple(f["fault"].split(" ", 1)) for f in run["faults"] if " " in f["fault"]]
    return fault_panels(run["params"], faults, run["dir"] / "topology-faults.png")


def _topology(run):
    """topology.png (the report's drawing), or None for a topology that cannot be drawn."""
    from lab.analysis.draw import draw_params_topology
    try:
        return draw_params_topology(run["params"], run["dir"] / "topology.png")
    except (ValueError, KeyError, TypeError, OSError):
        return None


def timeline(run_dir):
    """A timeline run's figures (dual-active): delivery, throughput, site share, the close-ups
    of every fault and the topology with each fault on it; drawn at once (render)."""
    run = load_run(run_dir)
    paths = [run["dir"] / n for n in ("delivery.png", "throughput.png", "site_share.png")]
    for old in run["dir"].glob("closeup-*.png"):          # a redraw leaves no stale close-up
        old.unlink()
    jobs = [(closeups, (run, run["dir"])), (delivery, (run, paths[0])),
            (throughput, (run, paths[1])), (site_share, (run, paths[2]))]
    if run["params"].get("topology"):
        jobs += [(_fault_panels, (run,)), (_topology, (run,))]
    drawn = render(jobs)
    return drawn[0] + paths + [path for path in drawn[4:] if path]


def firewall(results, out):
    fig, ax = plt.subplots(figsize=(7, 4.2))
    labels = [r["remedy"] for r in results]
    asym = [100 * r["asymmetric"]["established"] / r["asymmetric"]["attempted"] for r in results]
    fail = [100 * r["failover"]["survived"] / max(r["failover"]["established"], 1) for r in results]
    xs = range(len(results))
    ax.bar([x - 0.2 for x in xs], asym, 0.4, label="established over an asymmetric path")
    ax.bar([x + 0.2 for x in xs], fail, 0.4, label="survived the failover to the other firewall")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels)
    ax.set_ylabel("% of sessions")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    ax.set_title("Stateful firewalls in an active/active design, per remedy", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def designs(results, out):
    """RTO, per-site utilization and sessions lost per design, side by side; with a data tier
    a second row: write RTO ("never" where no write came back), RPO in writes, commit p50/p99."""
    names = [r["design"] for r in results]
    with_data = any(r.get("data") for r in results)
    fig, grid = plt.subplots(2 if with_data else 1, 3, figsize=(13, 7.6 if with_data else 4),
                             squeeze=False)
    axes = grid[0]
    axes[0].bar(names, [r["rto_ms"] or 0 for r in results], color="tab:red")
    axes[0].set_title("RTO when dc1 powers off (ms)", fontsize=10)
    sites = sorted({s for r in results for s in r["utilization"]})
    bottom = [0.0] * len(results)
    for site in sites:
        values = [100 * r["utilization"].get(site, 0.0) for r in results]
        axes[1].bar(names, values, bottom=bottom, label=site)
        bottom = [b + v for b, v in zip(bottom, values)]
    axes[1].set_title("Share of client traffic per site (%)", fontsize=10)
    axes[1].legend(fontsize=8)
    axes[2].bar(names, [100 * r["sessions_lost"] / max(r["sessions"], 1) for r in results],
                color="tab:gray")
    axes[2].set_title("Long-lived sessions lost (%)", fontsize=10)
    if with_data:
        data = grid[1]
        rto = [r.get("write_rto_ms") for r in results]
        bars = data[0].bar(names, [v or 0 for v in rto], color="tab:purple")
        for bar, r, v in zip(bars, results, rto):
            if r.get("data") and v is None:
                data[0].annotate("never", (bar.get_x() + bar.get_width() / 2, 0), ha="center",
                                 va="bottom", fontsize=9, color="tab:red")
        data[0].set_title("Write RTO: dc1 off to the first write back (ms)", fontsize=10)
        data[1].bar(names, [r.get("rpo_writes") or 0 for r in results], color="tab:orange")
        data[1].set_title("RPO: acknowledged writes lost", fontsize=10)
        x = range(len(results))
        data[2].bar([i - 0.2 for i in x], [r.get("commit_ms_p50") or 0 for r in results], 0.4,
                    label="p50")
        data[2].bar([i + 0.2 for i in x], [r.get("commit_ms_p99") or 0 for r in results], 0.4,
                    label="p99")
        data[2].set_xticks(list(x))
        data[2].set_xticklabels(names)
        data[2].legend(fontsize=8)
        data[2].set_title("Commit latency before the fault (ms)", fontsize=10)
        axes = list(axes) + list(data)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def gslb(results, out):
    """Failover per variant; with request times, a second panel: before the fault and once
    served again (a load balancer's trombone across the DCI)."""
    timed = [r for r in results if r.get("latency_ms_after") is not None]
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(11 if timed else 7, 3.8),
                             squeeze=False)
    ax = axes[0][0]
    labels = [r["variant"] for r in results]
    values = [r["failover_s"] if r["failover_s"] is not None else 0 for r in results]
    colours = ["tab:orange" if r["variant"].startswith("haproxy") else
               "tab:green" if r["variant"] == "anycast" else "tab:blue" for r in results]
    bars = ax.bar(labels, values, color=colours)
    for bar, r in zip(bars, results):
        if r["failover_s"] is None:
            ax.annotate("never", (bar.get_x() + bar.get_width() / 2, 0.1), ha="center", fontsize=8)
    ax.set_ylabel("failover, s (worst affected client)")
    ax.set_title("dc1 fails: anycast, DNS GSLB, HAProxy", fontsize=10)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    if timed:
        ax2 = axes[0][1]
        xs = range(len(timed))
        ax2.bar([x - 0.2 for x in xs], [r["latency_ms_before"] or 0 for r in timed], 0.4,
                label="before the fault", color="tab:gray")
        ax2.bar([x + 0.2 for x in xs], [r["latency_ms_after"] or 0 for r in timed], 0.4,
                label="served again", color="tab:orange")
        for x, r in zip(xs, timed):
            if r.get("added_latency_ms") is not None:
                ax2.annotate(f"{r['added_latency_ms']:+.1f} ms", (x + 0.2, r["latency_ms_after"]),
                             ha="center", va="bottom", fontsize=8)
        ax2.set_xticks(list(xs))
        ax2.set_xticklabels([r["variant"] for r in timed], fontsize=8, rotation=20)
        ax2.set_ylabel("request time, ms (median)")
        ax2.set_title("what the path after failover costs\n(anycast, GSLB: a TCP connection per "
                      "request; HAProxy: HTTP on a kept-alive one)", fontsize=9)
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def compare(run_dirs, out):
    """Outage per fault of several runs side by side."""
    runs = [load_run(d) for d in run_dirs]
    faults = []
    for run in runs:
        for f in run["metrics"]["faults"]:
            if f["fault"] not in faults:
                faults.append(f["fault"])
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(faults) + 2), 4))
    for i, run in enumerate(runs):
        by_fault = {f["fault"]: f["outage_ms"] or 0 for f in run["metrics"]["faults"]}
        label = f"{run['dir'].name} {run['params'].get('options', {}).get('mode', '')}"
        ax.bar([j + i * width for j in range(len(faults))],
               [by_fault.get(f, 0) for f in faults], width, label=label)
    ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(faults))])
    ax.set_xticklabels(faults, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("worst outage, ms")
    ax.set_yscale("symlog", linthresh=10)
    ax.legend(fontsize=8)
    ax.set_title("Outage per fault", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


VARIANT_COLORS = {"pg-async": "tab:orange", "pg-sync": "tab:blue", "galera": "tab:green",
                  "pg-patroni": "tab:purple"}


def commit_latency(variants, out):
    """Unloaded commit p50 (p99 as the bar's top) against the measured RTT between sites, per
    data tier, with the local commit + one RTT line and the engine's model (Galera: EVS safe
    delivery over the measured RTTs; with a witness 1.5 RTT) where there is one; Galera also
    without its witness (squares)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for name, v in variants.items():
        color = VARIANT_COLORS.get(name)
        for key, marker, suffix in (("sweep", "o", ""), ("sweep_no_witness", "s",
                                                          " without witness")):
            points = sorted(v.get(key) or [], key=lambda p: p["rtt_ms"])
            if not points:
                continue
            rtt = [p["rtt_ms"] for p in points]
            p50 = [p["commit_ms_p50"] for p in points]
            p99 = [p["commit_ms_p99"] for p in points]
            ax.errorbar(rtt, p50, yerr=[[0] * len(p50), [b - a for a, b in zip(p50, p99)]],
                        marker=marker, capsize=3, color=color, linestyle="-" if not suffix
                        else "--", label=f"{name}{suffix} commit p50 (bar: p99)")
            if key == "sweep":
                local = [p["local_ms_p50"] for p in points]
                ax.plot(rtt, [l + r for l, r in zip(local, rtt)], linestyle=":", color=color,
                        marker="_", markersize=16, label=f"{name} local commit + 1 RTT")
            if name == "galera" and all(p.get("model_ms") is not None for p in points):
                # a marker too, so that a one-delay sweep (--quick) shows where the model is
                ax.plot(rtt, [p["model_ms"] for p in points], linestyle="-.", color=color,
                        marker="x", markersize=8, alpha=0.7,
                        label=f"{name}{suffix} model (EVS safe delivery)")
    ax.set_xlabel("RTT between the database nodes, ms (measured)")
    ax.set_ylabel("commit latency, ms")
    ax.set_title("What replication costs per commit")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def rpo_rto(variants, out):
    """Per fault, per data tier: acknowledged writes lost (RPO) and the RTO; a loss by a
    synchronous tier or a divergence is drawn in red."""
    faults = sorted({f for v in variants.values() for f in v["faults"]},
                    key=lambda f: ["power-off", "partition", "gray"].index(f)
                    if f in ("power-off", "partition", "gray") else 9)
    names = list(variants)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs = [j + i * width for j in range(len(faults))]
        results = [variants[name]["faults"].get(f) for f in faults]
        rpo = [r["rpo_writes"] or 0 if r else 0 for r in results]
        rto = [(r["rto_ms"] or 0) / 1000 if r else 0 for r in results]
        bad = [bool(r and ((name != "pg-async" and r["rpo_writes"]) or r["divergent_writes"]))
               for r in results]
        ax1.bar(xs, rpo, width, color=["tab:red" if b else VARIANT_COLORS.get(name) for b in bad],
                label=name)
        for x, r, value in zip(xs, results, rpo):
            ax1.annotate(str(value), (x, value), ha="center", va="bottom", fontsize=7)
        ax2.bar(xs, rto, width, color=VARIANT_COLORS.get(name), label=name)
        for x, r in zip(xs, results):
            if r and r["rto_ms"] is None:
                ax2.annotate("never", (x, 0), ha="center", va="bottom", fontsize=7,
                             color="tab:red")
    for ax, label in ((ax1, "acknowledged writes lost (RPO)"), (ax2, "RTO, s")):
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(faults))])
        ax.set_xticklabels(faults)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    ax1.set_title("What each fault loses")
    ax2.set_title("How long until writes are acknowledged again")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


SITE_COLORS = ("tab:blue", "tab:green", "tab:purple", "tab:brown")


def split_brain(timelines, out, bin_s=0.1):
    """One panel per variant: acknowledged writes per site per bin (by when they were sent),
    the partition shaded; writes that diverged (one side has them, the other does not) red."""
    names = list(timelines)
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.4 * max(1, len(names))),
                             sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        data = timelines[name]
        ax.axvspan(data["partition"], data["heal"], color="0.9", label="partition")
        end = max([t for site in data["sites"].values() for lst in site.values() for t in lst]
                  + [data["heal"] + 1])
        bins = [i * bin_s for i in range(int(end / bin_s) + 2)]
        for i, (site, lists) in enumerate(sorted(data["sites"].items())):
            color = SITE_COLORS[i % len(SITE_COLORS)]
            ax.hist(lists["ok"], bins=bins, histtype="step", color=color,
                    label=f"{site} accepted")
            if lists["divergent"]:
                ax.hist(lists["divergent"], bins=bins, color="tab:red", alpha=0.7,
                        label=f"{site} divergent")
        title = name + (f": {data['divergent_writes']} DIVERGENT writes (split brain)"
                        if data["divergent_writes"] else ": no divergence")
        ax.set_title(title, color="tab:red" if data["divergent_writes"] else "black",
                     fontsize=10)
        ax.set_ylabel(f"writes / {int(bin_s * 1000)} ms")
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("s since the writers started")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


DCI_PHASE_COLOURS = {"unloaded": "tab:gray", "qos-off": "tab:red", "qos-on": "tab:green"}


def dci_qos(metrics, out):
    """dci-qos, one figure: per class p99 latency (log scale) and loss in each phase, and the
    synchronous commit latency and BFD flaps per phase: QoS off vs on side by side."""
    variants = metrics["variants"]
    phases = list(variants)
    classes = [c for c in (next(iter(variants.values()))["classes"] if variants else {})
               if c != "bulk"]
    fig, (ax_lat, ax_loss, ax_commit) = plt.subplots(1, 3, figsize=(12, 3.8),
                                                     gridspec_kw={"width_ratios": [3, 3, 2]})
    width = 0.8 / max(len(phases), 1)
    for i, phase in enumerate(phases):
        xs = [j + i * width for j in range(len(classes))]
        colour = DCI_PHASE_COLOURS.get(phase, None)
        p99 = [variants[phase]["classes"][c]["p99_ms"] or 0 for c in classes]
        loss = [variants[phase]["classes"][c]["loss_pct"] or 0 for c in classes]
        ax_lat.bar(xs, p99, width, label=phase, color=colour)
        ax_loss.bar(xs, loss, width, label=phase, color=colour)
    for ax in (ax_lat, ax_loss):
        ax.set_xticks([j + width * (len(phases) - 1) / 2 for j in range(len(classes))])
        ax.set_xticklabels(classes, fontsize=8)
    ax_lat.set_ylabel("one-way p99, ms")
    ax_lat.set_title("latency per class across the DCI", fontsize=10)
    handles, labels = ax_lat.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=len(phases), fontsize=8)
    top = max([variants[p]["classes"][c]["loss_pct"] or 0 for p in phases for c in classes],
              default=0)
    ax_loss.set_ylim(0, max(1.0, 1.15 * top))
    ax_loss.set_ylabel("loss, %")
    ax_loss.set_title("loss per class", fontsize=10)
    commit = [variants[p]["commit_ms_p99"] or 0 for p in phases]
    bars = ax_commit.bar(phases, commit, color=[DCI_PHASE_COLOURS.get(p) for p in phases])
    for bar, p in zip(bars, phases):
        flaps = variants[p]["bfd_flaps"]
        ax_commit.annotate(f"BFD flaps {flaps}", (bar.get_x() + bar.get_width() / 2,
                                                  bar.get_height()),
                           ha="center", va="bottom", fontsize=8,
                           color="tab:red" if flaps else "black")
    ax_commit.set_ylabel("synchronous commit p99, ms")
    ax_commit.set_title("commits and BFD", fontsize=10)
    ax_commit.tick_params(axis="x", labelsize=8)
    fig.suptitle("a backup copy fills the DCI: QoS off vs on", fontsize=11, x=0.02,
                 ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def dci_bandwidth(metrics, out):
    """dci-qos's bandwidth part: commit latency and replication lag against the DCI's rate,
    the knee marked, and the replication stream's own rate."""
    steps = metrics["bandwidth"]
    bws = [s["bw"] for s in steps]
    fig, (ax_commit, ax_lag) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_commit.plot(bws, [s["commit_ms_p50"] for s in steps], "o-", label="commit p50")
    ax_commit.plot(bws, [s["commit_ms_p99"] for s in steps], "s--", label="commit p99")
    ax_lag.plot(bws, [s["lag_ms_p99"] for s in steps], "o-", color="tab:purple",
                label="standby receive lag p99")
    wal = [s["wal_mbit"] for s in steps if s["wal_mbit"]]
    for ax in (ax_commit, ax_lag):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("DCI rate, Mbit/s")
        ax.set_xticks(bws)
        ax.set_xticklabels([f"{b:g}" for b in bws])
        ax.minorticks_off()
        if metrics.get("knee_mbit"):
            ax.axvline(metrics["knee_mbit"], color="tab:green", linestyle=":",
                       label=f"knee {metrics['knee_mbit']:g} Mbit/s")
        if wal:
            ax.axvline(max(wal), color="tab:orange", linestyle="--",
                       label=f"WAL stream {max(wal):.1f} Mbit/s")
        ax.legend(fontsize=8)
    ax_commit.set_ylabel("ms (log)")
    ax_commit.set_title(f"synchronous commits, {steps[0]['write_rate']} writes/s of "
                        f"{steps[0]['payload_kb']} KB", fontsize=10)
    ax_lag.set_ylabel("ms (log)")
    ax_lag.set_title("how far the standby is behind", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def scale(cases, out, verified_target_s, rto_target_ms):
    """The scale benchmark: time to up and verified, the RTO of a site power-off, and CPU
    and memory, against the number of sites, one line per layout, the targets marked."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax_up, ax_rto, ax_cpu = axes
    layouts = sorted({c["layout"] for c in cases})
    styles = {"mesh": "o-", "ring": "s--"}
    for layout in layouts:
        rows = sorted((c for c in cases if c["layout"] == layout or c["sites"] == 2),
                      key=lambda c: c["sites"])
        sites = [c["sites"] for c in rows]
        style = styles.get(layout, "^-")
        ax_up.plot(sites, [c["verified_s"] for c in rows], style, label=f"{layout}: verified")
        ax_up.plot(sites, [c["up_s"] for c in rows], style, alpha=0.4, label=f"{layout}: built")
        ax_rto.plot(sites, [c["rto_ms"] if c["rto_ms"] is not None else float("nan")
                            for c in rows], style, label=layout)
        ax_cpu.plot(sites, [100 * c["cpu"].get("controller", 0) for c in rows], style,
                    color="tab:blue", label=f"{layout}: controller")
        ax_cpu.plot(sites, [100 * c["cpu"].get("ovs-vswitchd", 0) for c in rows], style,
                    color="tab:orange", label=f"{layout}: ovs-vswitchd")
    ax_up.axhline(verified_target_s, color="tab:red", linestyle=":", label="target")
    ax_rto.axhline(rto_target_ms, color="tab:red", linestyle=":", label="target")
    ax_up.set_ylabel("seconds")
    ax_up.set_title("time to a verified lab", fontsize=10)
    ax_rto.set_ylabel("ms")
    ax_rto.set_title("RTO of a site power-off (dc1)", fontsize=10)
    ax_cpu.set_ylabel("% of one core")
    ax_cpu.set_title("CPU during the traffic", fontsize=10)
    for ax in axes:
        ax.set_xlabel("active sites")
        ax.set_xticks(sorted({c["sites"] for c in cases}))
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ------------------------------------------------------------------ per-fault close-ups

CLOSE_BEFORE_S, CLOSE_AFTER_S = 0.1, 0.5      # a close-up's window around its fault
CLOSE_BIN_S = 0.001                            # 1 ms


def controller_reactions(run_dir):
    """The controller's recorded reactions [(event, t_event, t_done)] (controller-status.json)."""
    path = Path(run_dir) / "controller-status.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [(r.get("event"), r.get("t_event"), r.get("t_done")) for r in status.get("reactions", [])
            if r.get("t_event") is not None]


def closeup_data(run, fault_index):
    """What a fault's close-up shows, from the raw files: per affected stream (every stream
    when none was affected) the probes around the fault, by send time relative to it (ms),
    delivered or lost; the fault instant (0), the controller's detection and reaction (its
    first reaction recorded from the fault on) and the first delivered probe after the last
    lost one of the longest gap (the outage), and where the fault's convergence ends (the
    table's figures). Pure: the tests feed it synthetic runs."""
    metrics = run["metrics"]
    impact = metrics["faults"][fault_index]
    t_fault = float(impact["t"])
    lo, hi = t_fault - CLOSE_BEFORE_S, t_fault + CLOSE_AFTER_S
    names = impact["affected"] or [s["name"] for s in run["streams"]]
    by_name = {s["name"]: s for s in run["streams"]}
    summaries = run.get("summaries", {})
    rows = []
    for name in names:
        stream = by_name[name]
        got = {}
        for r in run["probes"]:
            if int(r["stream"]) == stream["stream"]:
                got[int(r["seq"])] = float(r["sent"])
        summary = summaries.get(stream["stream"], {})
        rate = float(summary.get("target_rate") or stream.get("rate") or 1000.0)
        start = float(summary.get("start") or (min(got.values()) if got else t_fault))
        sent_total = int(summary.get("sent") or (max(got) + 1 if got else 0))
        delivered, lost = [], []
        for seq in range(sent_total):
            t = got.get(seq, start + seq / rate)
            if lo <= t <= hi:
                (delivered if seq in got else lost).append(round(1000 * (t - t_fault), 3))
        gap, first_back = longest_gap(delivered, lost)
        rows.append({"stream": name, "delivered": delivered, "lost": lost, "gap": gap,
                     "first_back_ms": first_back})
    reactions = [(e, te, td) for e, te, td in controller_reactions(run["dir"])
                 if t_fault - 0.01 <= te <= hi]
    detect = min(reactions, key=lambda r: r[1]) if reactions else None
    worst = max((r for r in rows if r["gap"]), key=lambda r: r["gap"], default=None)
    return {"fault": impact["fault"], "at_s": impact["at_s"], "rows": rows,
            "outage_ms": impact.get("outage_ms"), "recovered": impact.get("recovered"),
            "converged_ms": impact.get("convergence_ms"),
            "detected_ms": round(1000 * (detect[1] - t_fault), 3) if detect else None,
            "detected_by": detect[0] if detect else None,
            "reacted_ms": round(1000 * (detect[2] - t_fault), 3) if detect and detect[2] else None,
            "first_back_ms": worst["first_back_ms"] if worst else None}


def longest_gap(delivered, lost):
    """(how many probes the longest run of lost ones holds, the first delivered probe (ms)
    after it): the outage's end, which stray single losses elsewhere do not move; (0, None)
    when nothing was lost, (n, None) when nothing came back in the window."""
    events = sorted([(t, True) for t in delivered] + [(t, False) for t in lost])
    best, run_len, run_end = 0, 0, None
    for i, (t, ok) in enumerate(events):
        if not ok:
            run_len += 1
            if run_len > best:
                best, run_end = run_len, i
        else:
            run_len = 0
    if run_end is None:
        return 0, None
    return best, next((t for t, ok in events[run_end + 1:] if ok), None)


def _closeup_axes(ax, data, small=False):
    rows = data["rows"]
    for y, row in enumerate(rows):
        ax.scatter(row["delivered"], [y] * len(row["delivered"]), marker="|", s=60 if not small
                   else 25, color="tab:blue", linewidths=0.8)
        ax.scatter(row["lost"], [y] * len(row["lost"]), marker="|", s=60 if not small else 25,
                   color="tab:red", linewidths=1.2)
    marks = [(0.0, "tab:red", "-", "fault"),
             (data["detected_ms"], "tab:orange", "--", f"detected ({data['detected_by']})"),
             (data["reacted_ms"], "tab:purple", "-.", "controller reacted"),
             (data["first_back_ms"], "tab:green", ":", "first delivered after the outage"),
             (data["converged_ms"], "tab:olive", (0, (1, 3)), "converged (last loss over)")]
    for x, color, style, label in marks:
        if x is not None and -1000 * CLOSE_BEFORE_S <= x <= 1000 * CLOSE_AFTER_S:
            ax.axvline(x, color=color, linestyle=style, linewidth=1.2, label=label)
    ax.set_xlim(-1000 * CLOSE_BEFORE_S, 1000 * CLOSE_AFTER_S)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["stream"] for r in rows], fontsize=7 if small else 8)
    outage = data["outage_ms"]
    verdict = ("" if outage is None else f": outage {'' if data['recovered'] else '>'}"
               f"{outage:.1f} ms")
    ax.set_title(f"{data['at_s']:g} s {data['fault']}{verdict}", fontsize=8 if small else 10,
                 loc="left")
    ax.grid(axis="x", alpha=0.3)


def closeups(run, out_dir):
    """One figure per fault (closeup-N.png) and one small-multiples figure of them all
    (closeups.png): every affected stream's probes from -100 to +500 ms around the fault, each
    probe a tick at its send time (blue delivered, red lost), 1 ms resolution, with the fault,
    the controller's detection and reaction, and the first delivered probe marked."""
    out_dir = Path(out_dir)
    faults = run["metrics"].get("faults") or []
    datas = [closeup_data(run, i) for i in range(len(faults))]
    paths = []
    for i, data in enumerate(datas, start=1):
        fig, ax = plt.subplots(figsize=(10, 1.2 + 0.45 * len(data["rows"])))
        _closeup_axes(ax, data)
        ax.set_xlabel("ms from the fault (probes by send time; blue delivered, red lost)")
        ax.legend(fontsize=7, loc="upper right", framealpha=0.9)
        fig.tight_layout()
        path = out_dir / f"closeup-{i}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    if datas:
        cols = 2 if len(datas) > 1 else 1
        nrows = (len(datas) + cols - 1) // cols
        height = sum(max(1.1, 0.35 * len(d["rows"]) + 0.6) for d in datas[::cols]) + 0.8
        fig, axes = plt.subplots(nrows, cols, figsize=(11, height), squeeze=False)
        for ax, data in zip(axes.flat, datas):
            _closeup_axes(ax, data, small=True)
        for ax in list(axes.flat)[len(datas):]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=4)
        fig.suptitle(f"Every fault up close (-100 ... +500 ms) — {_title(run)}", fontsize=10)
        fig.tight_layout(rect=(0, 0.05, 1, 0.96))
        path = out_dir / "closeups.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.insert(0, path)
    return paths


def design_closeups(design_dir, result):
    """The power-off of one design run up close (closeups.png, closeup-1.png) and the topology
    with the site it hit (topology-faults.png), in the design's folder; from design.json,
    probes.csv, streams.json and the senders' summaries, and the design's metrics (`result`:
    the clients it hit and its RTO). Returns the paths ([] when the folder lacks them)."""
    design_dir = Path(design_dir)
    try:
        raw = json.loads((design_dir / "design.json").read_text())
        streams = json.loads((design_dir / "streams.json").read_text())
        probes = _read_csv(design_dir / "probes.csv")
    except (OSError, ValueError):
        return []
    names = {s["name"] for s in streams}
    hit = [f"{c}>" for c in result.get("clients_hit") or []]
    affected = [n for n in sorted(names) if any(n.startswith(h) or n == h.rstrip(">")
                                                 for h in hit)]
    fault = f"power-off {raw['fault_site']}"
    run = {"dir": design_dir, "streams": streams, "probes": probes,
           "summaries": _sender_summaries(design_dir), "params": {"options": {}},
           "metrics": {"topology": raw.get("design", ""), "timeline": {"t0": raw["t0"]},
                       "faults": [{"fault": fault, "at_s": round(raw["t_fault"] - raw["t0"], 2),
                                   "t": raw["t_fault"], "affected": affected,
                                   "outage_ms": result.get("rto_ms"),
                                   "recovered": result.get("rto_ms") is not None,
                                   "convergence_ms": None}]}}
    for old in design_dir.glob("closeup-*.png"):
        old.unlink()
    paths = closeups(run, design_dir)
    if isinstance(raw.get("topology"), dict):
        from lab.analysis.draw import fault_panels
        panel = fault_panels({"topology": raw["topology"]},
                             [(f"{fault} ({raw.get('design', '')})", "power-off",
                               raw["fault_site"])], design_dir / "topology-faults.png")
        if panel:
            paths.append(panel)
    return paths
