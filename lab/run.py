#!/usr/bin/env python3
"""ActiveLab's one entry point: experiments by name, plus doctor, list and clean.

    sudo python lab/run.py dual-active          # the main experiment
    sudo python lab/run.py doctor [--json]      # what this machine can run
    python lab/run.py list                      # experiments and topologies
    sudo python lab/run.py clean                # remove what a crashed run left

Exit codes: 0 ran and every verdict passed; 1 could not run (bad input, platform, crash,
a teardown that left something); 3 ran to the end but a verdict failed (the last line names
which); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM or SIGHUP).

Whatever `python` runs this file, it re-executes itself in the project's .venv (made by
install.sh), so `sudo python` cannot pick up an interpreter without the lab's packages.
"""

import sys
import time
from pathlib import Path

T0 = time.monotonic()
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.venv import ensure_venv  # noqa: E402  (stdlib only)

if __name__ == "__main__":
    ensure_venv()

import argparse            # noqa: E402  (after the re-exec on purpose)
import json                # noqa: E402
import os                  # noqa: E402
import signal              # noqa: E402

from lab.cli import options  # noqa: E402
from lab.emulation import probe, state  # noqa: E402
from controllers.intent import DEFAULT_MODE, DEFAULT_POLICY, MODES, POLICIES  # noqa: E402
from lab.errors import LabError                                      # noqa: E402
from lab.experiment import Options, Progress, RunContext                      # noqa: E402
from lab.analysis.report import write_report                                  # noqa: E402
from lab.analysis.results import (RESULTS_ROOT, format_table, hand_to_invoking_user,  # noqa: E402
                         new_run_dir, write_json)
from lab.model.topology import available_topologies, load_topology, with_dci  # noqa: E402
from experiments import EXPERIMENTS                                  # noqa: E402


EXIT_OK, EXIT_ERROR, EXIT_VERDICT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 3, 130, 143
LIFECYCLE_EXITS = ("exit codes: 0 done; 1 refused or failed (no lab up, a lab already up, an "
                   "unknown link, site or host, not root: the line says which); exec exits "
                   "with its command's status")
EXIT_CODES = ("exit codes: 0 ran and every verdict passed; 1 could not run (bad input, platform, "
              "crash); 3 ran to the end but a verdict failed (the last line names which); "
              "130 interrupted; 143 terminated")


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line naming the option and where to look (exit 1)."""

    def error(self, message):
        sys.stderr.write(f"error: {self.prog}: {message}; see {self.prog} --help\n")
        sys.exit(EXIT_ERROR)


def add_controller_arguments(parser, offered=("mode", "vip_policy", "bfd_ms"), opts=Options):
    if "mode" in offered:
        parser.add_argument("--mode", choices=MODES, default=DEFAULT_MODE,
                            help="failover: protection (fast-failover groups, BFD) or "
                                 "restoration (the controller recomputes on events)")
    if "vip_policy" in offered:
        parser.add_argument("--vip-policy", choices=POLICIES, default=DEFAULT_POLICY,
                            help="anycast (nearest healthy site) or primary-backup (primary "
                                 "site until it fails)")
    if "bfd_ms" in offered:
        parser.add_argument("--bfd-ms", type=options.bounded(int, 10, 10000),
                            default=None if opts is not Options else Options.bfd_ms,
                            metavar="MS", help="BFD transmit/receive interval on inter-switch "
                                               "links, ms, 10 to 10000 (detection after 3 "
                                               f"missed; default {opts.bfd_ms})")


def add_topology_argument(parser, default=None, what="topology name or YAML file"):
    """TOPOLOGY, given either way on every command that takes one: positionally or with
    --topology (merged by merge_topology after parsing)."""
    shipped = ", ".join(available_topologies())
    parser.add_argument("topology_pos", nargs="?", default=None, metavar="TOPOLOGY",
                        help=f"{what} (shipped: {shipped})"
                             + (f"; default {default}" if default else ""))
    parser.add_argument("--topology", default=None, metavar="NAME|FILE",
                        help="the same, as an option")
    parser.set_defaults(topology_default=default)


def merge_topology(args):
    """args.topology from TOPOLOGY or --topology (one of them, or the command's default)."""
    if not hasattr(args, "topology_pos"):
        return args
    pos, opt = args.topology_pos, args.topology
    if pos is not None and opt is not None and pos != opt:
        raise LabError(f"{args.command}: the topology is given twice ({pos} and --topology "
                       f"{opt}); give it once")
    args.topology = pos or opt or args.topology_default
    del args.topology_pos, args.topology_default
    if args.topology is None and args.command != "cli":      # cli: attach, or dual-active
        raise LabError(f"{args.command}: which topology? give TOPOLOGY (a name or a YAML "
                       f"file; shipped: {', '.join(available_topologies())})")
    return args


def add_platform_arguments(parser):
    parser.add_argument("--datapath", choices=("auto", "kernel", "user"), default="auto",
                        help="Open vSwitch datapath (auto: kernel when the module exists)")
    parser.add_argument("--delay-method", choices=("auto", "netem", "delayline"), default="auto",
                        help="delay/loss emulation (auto: netem when the kernel has it)")


def build_parser():
    parser = OneLineParser(prog="lab/run.py", description="ActiveLab: emulate and measure "
                           "distributed active/active data centers.", epilog=EXIT_CODES)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=OneLineParser)
    doctor = sub.add_parser("doctor", help="check what this machine can run")
    doctor.set_defaults(handler=cmd_doctor)
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    listing = sub.add_parser("list", help="list experiments and topologies")
    listing.set_defaults(handler=cmd_list)
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    validate = sub.add_parser("validate", help="check a topology file without building anything "
                                               "(no root needed)",
                              epilog="exit codes: 0 the topology is valid; 1 it is not (or the "
                                     "file cannot be read): the line names the file, the field "
                                     "and the fix")
    validate.set_defaults(handler=cmd_validate)
    add_topology_argument(validate, what="a topology YAML file or a shipped topology's name")
    validate.add_argument("--json", action="store_true",
                          help="print the verdict as JSON ({file, valid, error, warnings, topology})")
    sub.add_parser("clean", help="remove what a crashed run left behind (from its state file)"
                   ).set_defaults(handler=cmd_clean)
    plot = sub.add_parser("plot", help="redraw a run folder's figures, summary.txt and "
                                       "report.html from its files (with the experiment that "
                                       "wrote it)")
    plot.set_defaults(handler=cmd_plot)
    plot.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    analyse = sub.add_parser("analyse", help="recompute a run folder's metrics.json from its raw "
                                             "files, then redraw it as plot does; exits as the "
                                             "run did (0 or 3)")
    analyse.set_defaults(handler=cmd_analyse)
    analyse.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    compare = sub.add_parser("compare", help="draw runs side by side (outage per fault)")
    compare.set_defaults(handler=cmd_compare)
    compare.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    compare.add_argument("--out", type=Path, default=None, metavar="DIR",
                         help="the folder to write compare.png into (default: the first run's "
                              "folder; a path ending in .png names the file itself)")
    check = sub.add_parser("check", help="grade a guided lab (docs/labs/): exit 0 when done")
    check.set_defaults(handler=cmd_check)
    check.add_argument("lab", choices=("lab1", "lab2", "lab3", "lab4", "lab5", "lab6", "lab7",
                                       "lab8"), help="the lab to check")
    check.add_argument("--file", type=Path, default=None, metavar="YAML",
                       help="your topology file (lab1, lab4, lab8) or answers file (lab5, lab6)")
    check.add_argument("--results", type=Path, default=None, metavar="DIR",
                       help="results folder (lab2-lab8; default results/)")
    student = sub.add_parser("export-student", help="write the students' copy of the project "
                                                    "to DIR: everything but the labs' answer "
                                                    "keys (docs/labs/instructor)")
    student.set_defaults(handler=cmd_export_student)
    student.add_argument("dir", type=Path, metavar="DIR", help="a new (or empty) folder")
    draw = sub.add_parser("draw", help="draw a topology (sites, links, bw/delay): a PNG, "
                                       "Graphviz dot and Mermaid text")
    draw.set_defaults(handler=cmd_draw)
    add_topology_argument(draw)
    draw.add_argument("--out", type=Path, default=None, metavar="DIR",
                      help="the folder to write into (default here); the files are named after "
                           "the topology's file: my-sites.png, .dot, .mmd (a path ending in .png "
                           "names them itself)")
    up = sub.add_parser("up", help="build a lab and leave it running (then status, fail, "
                                   "exec, cli ... down)", epilog=LIFECYCLE_EXITS)
    up.set_defaults(handler=cmd_up)
    add_topology_argument(up)
    up.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help="results root folder: the lab's run folder (controller.log, the "
                         "supervisor's log) goes in DIR/up/ (default results/)")
    up.add_argument("--dci-delay", default=None, metavar="TIME",
                    help="override every DCI link's one-way delay, with a unit (e.g. 10ms)")
    up.add_argument("--dci-bw", type=options.bounded(float, 0.1, 10000), default=None,
                    metavar="MBIT", help="override every DCI link's bandwidth, Mbit/s")
    add_platform_arguments(up)
    add_controller_arguments(up)
    status = sub.add_parser("status", help="the running lab: nodes, links (state, shaping), "
                                           "controller, VIP placement, backup coverage",
                            epilog=LIFECYCLE_EXITS)
    status.set_defaults(handler=cmd_status)
    status.add_argument("--json", action="store_true", help="print it as JSON")
    sub.add_parser("down", help="tear the running lab down (exactly what it created)",
                   epilog=LIFECYCLE_EXITS).set_defaults(handler=cmd_down)
    for verb, what in (("fail", "cut a link of the running lab (carrier loss at both ends)"),
                       ("heal", "restore a cut link"),
                       ("gray", "gray-fail a link: it drops every frame, its carrier stays up"),
                       ("ungray", "end a gray failure")):
        one = sub.add_parser(verb, help=what, epilog=LIFECYCLE_EXITS)
        one.set_defaults(handler=cmd_lab_request, request=verb, target="link")
        one.add_argument("link", metavar="LINK", help="a link name (lab/run.py status lists them)")
    for verb, what in (("power-off", "power a site of the running lab off (its switch, "
                                     "hosts and links at once)"),
                       ("power-on", "power a site back on")):
        one = sub.add_parser(verb, help=what, epilog=LIFECYCLE_EXITS)
        one.set_defaults(handler=cmd_lab_request, request=verb, target="site")
        one.add_argument("site", metavar="SITE", help="a site name")
    move = sub.add_parser("move", help="move a host of the running lab to another site (it "
                                       "keeps its IP and MAC: VM mobility)", epilog=LIFECYCLE_EXITS)
    move.set_defaults(handler=cmd_lab_request, request="move", target="move")
    move.add_argument("host", metavar="HOST")
    move.add_argument("site", metavar="SITE")
    exe = sub.add_parser("exec", help="run a command in a host of the running lab "
                                      "(exec NODE -- CMD...); exits with the command's status")
    exe.set_defaults(handler=cmd_exec)
    exe.add_argument("node", metavar="NODE", help="a host name, e.g. client1")
    exe.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD",
                     help="the command and its arguments, after --")
    cli = sub.add_parser("cli", help="a prompt on the lab: attaches to the running lab (up), "
                                     "or builds TOPOLOGY for the session")
    cli.set_defaults(handler=cmd_cli)
    add_topology_argument(cli, what="topology name or YAML file, when no lab is up (default "
                                    "dual-active)")
    add_platform_arguments(cli)
    add_controller_arguments(cli)
    for name, experiment in EXPERIMENTS.items():
        exp = sub.add_parser(name, help=experiment.description, description=experiment.doc,
                             epilog=EXIT_CODES,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        exp.set_defaults(handler=cmd_experiment)
        offered = experiment.common_options
        if "topology" in offered:
            add_topology_argument(exp, default=experiment.topology)
        exp.add_argument("--out", type=Path, default=None, metavar="DIR",
                         help="results root folder (default results/)")
        exp.add_argument("--quick", action="store_true", help="short variant (what CI runs)")
        exp.add_argument("--dci-delay", default=None, metavar="TIME",
                         help="override every DCI link's one-way delay, with a unit (e.g. 10ms)")
        exp.add_argument("--dci-bw", type=options.bounded(float, 0.1, 10000), default=None,
                         metavar="MBIT", help="override every DCI link's bandwidth, Mbit/s")
        exp.add_argument("--seed", type=int, default=1, help="random seed (jitter, loss)")
        add_platform_arguments(exp)
        add_controller_arguments(exp, offered, experiment.options or Options)
        experiment.add_arguments(exp)
    return parser


def cmd_doctor(args):
    checks = probe.run_checks()
    if args.json:
        print(json.dumps([dict(vars(c), blocks=c.blocks) for c in checks], indent=1))
    else:
        rows = [(c.name, {"ok": "ok", "fallback": "fallback", "missing": "MISSING"}[c.status]
                 + ("" if c.required or c.status != "missing" else " (optional)"),
                 c.detail, c.fix if c.status != "ok" else "") for c in checks]
        print(format_table(["check", "verdict", "detail", "fix"], rows))
        blocking = [c.name for c in checks if c.blocks]
        print("\nthe lab can run" if not blocking
              else f"\nthe lab cannot run: fix {', '.join(blocking)}")
    return 1 if any(c.blocks for c in checks) else 0


def topology_facts(topo):
    """A topology's size and names (list --json, validate --json)."""
    return {"name": topo.name, "description": topo.description,
            "sites": [s.name for s in topo.sites],
            "edges": [s.name for s in topo.switches if s.kind == "edge"],
            "hosts": [h.name for h in topo.hosts], "links": [l.name for l in topo.links],
            "services": [v.name for v in topo.services],
            "data": topo.data.engine if topo.data else None}


def cmd_validate(args):
    from lab.errors import TopologyError
    try:
        topo = load_topology(args.topology)
    except TopologyError as exc:
        if args.json:
            print(json.dumps({"file": str(args.topology), "valid": False,
                              "error": {"message": str(exc), "field": exc.field,
                                        "problem": exc.problem, "fix": exc.fix},
                              "warnings": [], "topology": None}, indent=1))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    facts = topology_facts(topo)
    if args.json:
        print(json.dumps({"file": str(args.topology), "valid": True, "error": None,
                          "warnings": list(topo.warnings), "topology": facts}, indent=1))
        return EXIT_OK
    for warning in topo.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.topology}: valid: {topo.name}: {len(facts['sites'])} sites, "
          f"{len(facts['edges'])} client edges, {len(facts['hosts'])} hosts, "
          f"{len(facts['links'])} links, {len(facts['services'])} services"
          + (f", data tier {facts['data']}" if facts["data"] else ""))
    return EXIT_OK


def cmd_list(args):
    if args.json:
        topologies = []
        for name in available_topologies():
            try:
                topologies.append(dict(topology_facts(load_topology(name)), valid=True))
            except LabError as exc:
                topologies.append({"name": name, "valid": False, "error": str(exc)})
        print(json.dumps({"experiments": [{"name": n, "topology": e.topology,
                                           "description": e.description}
                                          for n, e in EXPERIMENTS.items()],
                          "topologies": topologies}, indent=1))
        return 0
    print(format_table(["experiment", "default topology", "what it does"],
                       [(n, e.topology, e.description) for n, e in EXPERIMENTS.items()]))
    rows = []
    for name in available_topologies():
        try:
            topo = load_topology(name)
            rows.append((name, f"{len(topo.sites)} sites, {len(topo.hosts)} hosts, "
                               f"{len(topo.links)} links", topo.description))
        except LabError as exc:
            rows.append((name, "INVALID", str(exc)))
    print()
    print(format_table(["topology", "size", "description"], rows))
    return 0


def require_root():
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, Open vSwitch): "
                       "run it with sudo, e.g. sudo python lab/run.py " + " ".join(sys.argv[1:]))


def cmd_clean(args):
    require_root()
    lock = state.RunLock()
    try:
        lock.acquire()
    except LabError as exc:
        raise LabError(f"{exc} (clean only removes what a crashed run left)") from None
    try:
        ledger = state.Ledger.load()
        if ledger is None:
            print("nothing to clean: no state file of a crashed run")
            return 0
        print(f"removing what this run left: {ledger.summary()}")
        problems = state.teardown(ledger)
        print("clean" if not problems else "some resources could not be removed (see above)")
        return 1 if problems else 0
    finally:
        lock.release()


def cmd_plot(args):
    redo(args.run_dir, reanalyse=False)
    return EXIT_OK


def cmd_analyse(args):
    text, summary = redo(args.run_dir, reanalyse=True)
    print()
    print(text)
    lines, code = verdict(summary, *judged_then(args.run_dir))
    print("\n".join(lines))
    return code


def cmd_check(args):
    from lab.cli.grading import check
    problems = check(args.lab, args.file, args.results)
    for problem in problems:
        print(f"{args.lab}: missing: {problem}")
    print(f"{args.lab}: {'done' if not problems else 'not done yet'}")
    return 1 if problems else 0


def cmd_export_student(args):
    from lab.cli.grading import export_student
    count = export_student(REPO, args.dir)
    print(f"the students' copy is in {args.dir} ({count} files); the answer keys "
          "(docs/labs/instructor) are not in it")
    return EXIT_OK


def cmd_draw(args):
    from lab.analysis.draw import draw_all
    topo = load_topology(args.topology)
    if args.out is not None and args.out.suffix not in ("", ".png"):
        raise LabError(f"--out {args.out}: give a .png path (the .dot and .mmd go beside it)")
    try:
        for path in draw_all(topo, args.topology, args.out):
            print(path)
    except OSError as exc:
        raise LabError(f"--out {args.out or '.'}: cannot write the drawing "
                       f"({exc.strerror or exc}); choose a writable folder") from None
    return 0


def cmd_compare(args):
    from lab.analysis import plots
    from lab.analysis.report import write_compare_report
    out = args.out or args.run_dirs[0]
    if out.suffix != ".png":
        out.mkdir(parents=True, exist_ok=True)
        out = out / "compare.png"
    print(plots.compare(args.run_dirs, out))
    print(write_compare_report(out, args.run_dirs))
    return 0


def prepare(args, experiment=None):
    """Validate the topology and every option, check the machine, choose the platform: all
    before building or writing anything."""
    if experiment is not None and experiment.topology_for is not None:
        topo = experiment.topology_for(args)
    else:
        topo = load_topology(args.topology)
    if getattr(args, "dci_delay", None) or getattr(args, "dci_bw", None):
        topo = with_dci(topo, delay=args.dci_delay, bw=args.dci_bw)
    for warning in topo.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if experiment is not None and experiment.validate is not None:
        experiment.validate(experiment.options.parse(vars(args)), topo)
    if hasattr(args, "out"):
        options.check_out_dir(args.out or RESULTS_ROOT)
    require_root()
    state.RunLock().acquire().release()      # another lab running: say so before writing anything
    if not probe.ovs_running():
        raise LabError("Open vSwitch is not running; start it: "
                       f"{probe.OVS_CTL} start --system-id=random (or run bash install.sh)")
    return topo, probe.choose_platform(args.datapath, args.delay_method)


def cmd_up(args):
    from lab.cli import lifecycle
    lifecycle.refuse_while_up("a second lab cannot go up")
    topo, platform = prepare(args)
    try:
        run_dir = new_run_dir("up", args.out)
    except OSError as exc:
        raise LabError(f"--out {args.out or 'results/'}: cannot create the run folder "
                       f"({exc.strerror}); choose a writable folder") from None
    spec = {"topology": str(args.topology), "run_dir": str(run_dir.resolve()),
            "mode": args.mode, "vip_policy": args.vip_policy, "bfd_ms": args.bfd_ms,
            "datapath": args.datapath, "delay_method": args.delay_method,
            "dci_delay": args.dci_delay, "dci_bw": args.dci_bw}
    log = Progress(T0)
    log(f"bringing up {topo.name} ({platform.datapath} datapath, delay by "
        f"{platform.delay_method}); run folder {run_dir}")
    lifecycle.up(spec, log=print)
    log("the lab is up: sudo python lab/run.py status | fail/heal/gray/ungray LINK | "
        "power-off/power-on SITE | move HOST SITE | exec HOST -- CMD | cli | down")
    return EXIT_OK


def cmd_status(args):
    from lab.cli import lifecycle
    require_root()
    answer = lifecycle.request("status")
    print(json.dumps(answer["data"], indent=1) if args.json else answer["out"])
    return EXIT_OK


def cmd_down(args):
    from lab.cli import lifecycle
    require_root()
    try:
        problems = lifecycle.down()
    except KeyboardInterrupt:
        # the supervisor tears down in its own session: a Ctrl-C here stops only the waiting
        sys.stderr.write("interrupted: stopped waiting; the lab's supervisor goes on taking "
                         "it down (check with: sudo python lab/run.py status)\n")
        return EXIT_INTERRUPTED
    if problems:
        raise LabError("teardown left " + "; ".join(problems)
                       + ": remove it with: sudo python lab/run.py clean")
    print("the lab is down, nothing is left")
    return EXIT_OK


def cmd_lab_request(args):
    from lab.cli import lifecycle
    require_root()
    if args.target == "link":
        fields = {"link": args.link}
    elif args.target == "site":
        fields = {"site": args.site}
    else:
        fields = {"host": args.host, "site": args.site}
    print(lifecycle.request(args.request, **fields)["out"])
    return EXIT_OK


def cmd_exec(args):
    import subprocess
    from lab.cli import lifecycle
    require_root()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise LabError(f"exec {args.node}: no command; give it after --, e.g. "
                       f"sudo python lab/run.py exec {args.node} -- ip addr")
    try:
        return subprocess.run(lifecycle.exec_argv(args.node, argv)).returncode
    except FileNotFoundError:
        raise LabError("mnexec is not installed (Mininet); run bash install.sh") from None


def cmd_cli(args):
    from lab.cli import lifecycle
    from lab.cli.interactive import run_cli
    session = lifecycle.running_session()
    if session is not None:
        require_root()
        if args.topology not in (None, session.data.get("topology")):
            raise LabError(f"a lab is up ({session.describe()}), not {args.topology}: attach "
                           "to it with lab/run.py cli, or take it down first with: "
                           "sudo python lab/run.py down")
        from lab.cli.attached import attach
        attach()
        return EXIT_OK
    args.topology = args.topology or "dual-active"
    topo, platform = prepare(args)
    run_dir = new_run_dir("cli", None)
    ctx = RunContext(experiment="cli", topo=topo, platform=platform, run_dir=run_dir,
                     options=vars(args), opts=Options.parse(vars(args)), log=Progress(T0))
    try:
        run_cli(ctx)
    finally:
        hand_to_invoking_user(run_dir)
    return 0


def cmd_experiment(args):
    experiment = EXPERIMENTS[args.command]
    topo, platform = prepare(args, experiment)
    try:
        run_dir = new_run_dir(experiment.name, args.out)
    except OSError as exc:
        raise LabError(f"--out {args.out or 'results/'}: cannot create the run folder "
                       f"({exc.strerror}); choose a writable folder") from None
    log = Progress(T0)
    opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    parsed = experiment.options.parse(opts)
    if opts.get("bfd_ms") is None and "bfd_ms" in opts:   # params.json records what ran
        opts["bfd_ms"] = parsed.bfd_ms
    ctx = RunContext(experiment=experiment.name, topo=topo, platform=platform, run_dir=run_dir,
                     opts=parsed, options=opts, log=log, seed=args.seed)
    try:
        write_json(run_dir / "params.json", {"experiment": experiment.name, "options": opts,
                                             "topology": topo.to_dict()})
        write_json(run_dir / "platform.json", probe.platform_facts(platform))
        log(f"run folder {run_dir}")
        summary = experiment.run(ctx)
        text = write_summary(run_dir, experiment, summary, *probe.timing_judged())
    except OSError as exc:
        raise LabError(f"{exc.filename or run_dir}: {exc.strerror or exc}; the lab was torn "
                       f"down and the results in {run_dir} are incomplete") from None
    finally:
        try:
            hand_to_invoking_user(run_dir)
        except OSError:
            pass
    print()
    print(text)
    print(f"\nresults: {run_dir} (open report.html in a browser)")
    lines, code = verdict(summary, *probe.timing_judged())
    print("\n".join(lines))
    return code


def write_summary(run_dir, experiment, summary, judged, why_not, drawn=()):
    """summary.txt and report.html of a run folder from its Summary; returns the text.
    drawn: figures already drawn (the run's or plot's: topology.png is drawn unless among them)."""
    text = "\n".join([summary.text] + warnings(summary, judged, why_not))
    params = json.loads((Path(run_dir) / "params.json").read_text())
    topology = params["topology"]["name"]
    if Path(run_dir) / "topology.png" not in {Path(p) for p in [*(drawn or ()), *summary.figures]}:
        try:
            from lab.analysis.draw import draw_params_topology
            draw_params_topology(params, Path(run_dir) / "topology.png")
        except (ValueError, KeyError, TypeError, OSError):
            pass                           # a run folder without a drawable topology
    title = (f"ActiveLab {experiment.name}" if topology == experiment.name
             else f"ActiveLab {experiment.name} on {topology}")
    write_report(run_dir, title, text, problems=summary.problems, timing=summary.timing,
                 judged=judged, subtitle=f"run {Path(run_dir).name}, topology {topology}"
                 + ("" if judged else f"; timing not judged on {why_not}"))
    (Path(run_dir) / "summary.txt").write_text(text + "\n")
    return text


def judged_then(run_dir):
    """timing_judged() as it was for an old run (its platform.json names the accelerator)."""
    try:
        accel = json.loads((Path(run_dir) / "platform.json").read_text()).get("accelerator")
    except (OSError, ValueError):
        accel = None
    return probe.timing_judged(accel or "none")


def redo(run_dir, reanalyse):
    """Rebuild an old run folder's figures, summary.txt and report.html (and, reanalyse,
    its metrics.json from the raw files first) with the experiment that wrote it."""
    import experiments
    experiment = experiments.of_run(run_dir)
    try:
        if reanalyse:
            write_json(run_dir / "metrics.json", experiment.analyse(run_dir))
        paths = experiment.plot(run_dir)
        summary = experiment.summarize(run_dir)
        text = write_summary(run_dir, experiment, summary, *judged_then(run_dir), drawn=paths)
    except FileNotFoundError as exc:
        raise LabError(f"{run_dir}: {Path(exc.filename).name} is missing, so the run cannot be "
                       f"{'analysed' if reanalyse else 'redrawn'} (was it complete?)") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise LabError(f"{run_dir}: its raw files do not read as a {experiment.name} run "
                       f"({type(exc).__name__}: {exc})") from None
    for path in paths + [run_dir / "summary.txt", run_dir / "report.html"]:
        print(path)
    return text, summary


def warnings(summary, judged, why_not):
    """The run's problems as warning lines for its summary and report."""
    note = "" if judged else f" (timing, not judged on {why_not})"
    return ([f"warning: {p}" for p in summary.problems]
            + [f"warning: {p}{note}" for p in summary.timing])


def verdict(summary, judged, why_not):
    """(lines, exit code) ending a run. Timing verdicts fail it like the others unless time is
    not judged here (an emulated CPU): then they are listed with the reason, and do not fail it."""
    lines = []
    problems = list(summary.problems) + (list(summary.timing) if judged else [])
    if summary.timing and not judged:
        lines.append(f"timing, not judged on {why_not} ({len(summary.timing)}): "
                     + "; ".join(summary.timing))
    if problems:
        return lines + [f"verdict: FAILED ({len(problems)}): " + "; ".join(problems)], EXIT_VERDICT
    if not summary.ok:
        return lines + ["verdict: FAILED: see the table above"], EXIT_VERDICT
    if summary.timing:
        return lines + [f"verdict: every functional check passed (timing not judged on "
                        f"{why_not})"], EXIT_OK
    return lines + ["verdict: every check passed"], EXIT_OK


class Terminated(BaseException):
    """SIGTERM or SIGHUP, turned into an exception so teardown runs."""


def left_behind():
    """What this process's own ledger still holds after a teardown ('' when nothing)."""
    try:
        ledger = state.Ledger.load()
    except LabError as exc:
        return str(exc)
    if ledger is None or ledger.data.get("pid") != os.getpid():
        return ""
    left = state.leftovers(ledger)
    return ", ".join(left) if left else "the state file " + str(ledger.path)


def main(argv=None):
    # A lab started from a script with `&` inherits an ignored SIGINT: install it explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_terminate(signum, frame):
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, on_terminate)
    signal.signal(signal.SIGHUP, on_terminate)
    try:
        args = build_parser().parse_args(argv)
        return args.handler(merge_topology(args))
    except (KeyboardInterrupt, Terminated) as exc:
        how = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated"
        left = left_behind()
        if left:
            sys.stderr.write(f"{how}: teardown left {left}; remove it with: "
                             "sudo python lab/run.py clean\n")
            return EXIT_ERROR
        sys.stderr.write(f"{how}: the lab was torn down, nothing is left\n")
        return EXIT_INTERRUPTED if how == "interrupted" else EXIT_TERMINATED
    except LabError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_ERROR
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"error: {where}{exc.strerror or exc}\n")
        return EXIT_ERROR
    except Exception as exc:               # a bug: one line here, the traceback in a file
        import tempfile
        import traceback
        fd, path = tempfile.mkstemp(prefix="activelab-crash-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            traceback.print_exc(file=fh)
        sys.stderr.write(f"error: internal error ({type(exc).__name__}: {exc}); the traceback "
                         f"is in {path}; please report it\n")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
