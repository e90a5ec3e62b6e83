"""The controller process: ``python -m controllers.main --config intent.json --port N ...``.

os-ken 4.x ships no manager command, so this is one: it patches eventlet, registers os-ken's
options and ours, parses them, and runs the ActiveLab app, listening on 127.0.0.1 only.
"""

import argparse
import logging
import sys


def parser():
    """The command line (controller_argv writes it)."""
    parser = argparse.ArgumentParser(prog="python -m controllers.main", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="intent JSON written by the lab")
    parser.add_argument("--port", type=int, required=True, help="OpenFlow TCP port on 127.0.0.1")
    parser.add_argument("--log", required=True, help="log file")
    parser.add_argument("--status", required=True, help="status JSON file the lab reads")
    return parser


def controller_argv(config, port, log, status, python=None):
    return [python or sys.executable, "-m", __name__, "--config", str(config), "--port", str(port),
            "--log", str(log), "--status", str(status)]


def main(argv=None):
    args = parser().parse_args(argv)
    from controllers.intent import Intent, IntentError
    try:
        Intent.load(args.config)           # refuse a wrong intent in one line, before os-ken starts
    except IntentError as exc:
        print(f"error: controller: {exc}", file=sys.stderr)
        with open(args.log, "a") as fh:
            fh.write(f"error: {exc}\n")
        return 2

    logging.basicConfig(filename=args.log, level=logging.INFO,
                        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    from os_ken.lib import hub
    hub.patch(thread=False)
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager
    import os_ken.controller.controller  # noqa: F401  (registers the ofp-* options)

    cfg.CONF.register_cli_opts([cfg.StrOpt("activelab-config"), cfg.StrOpt("activelab-status")])
    cfg.CONF(args=["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(args.port),
                   "--activelab-config", args.config, "--activelab-status", args.status],
             project="os_ken")
    logging.getLogger("activelab").info("controller listening on 127.0.0.1:%d", args.port)
    AppManager.run_apps(["controllers.app"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
