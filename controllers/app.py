"""The thin os-ken adapter: OpenFlow events in, ControllerLogic decisions out, as OpenFlow 1.3 messages.

Everything it decides comes from controllers.logic.ControllerLogic; this module only translates events,
sends the messages, keeps time, and writes a status file the lab reads (switches, links, hosts,
server health, and how long each reaction took).
"""

import functools
import json
import logging
import os
import threading
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER,
                                       set_ev_cls)
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3

from controllers.intent import Intent
from controllers.logic import BATCH_MAX_S, ControllerLogic
from controllers.ofmsg import CONTROLLER, TABLE, Flow, Group, PacketOut

LOG = logging.getLogger("activelab")
TICK = 0.05                 # seconds between timer runs (LLDP, health checks, status file)
STARVED_S = 0.25            # a timer run this late means the controller was starved of CPU
MAX_REACTIONS = 200


def serialized(handler):
    """Run an event handler holding the controller's lock. os-ken's default hub runs the
    event loop, the timer and each switch's connection in native threads: without the lock
    the timer's health checks and status read the logic while a handler changed it (an
    exception there, such as a dict changed while iterated, ended the timer and with it every
    health check), and the two could send one switch's changes out of order."""
    @functools.wraps(handler)
    def run(self, ev):
        with self.lock:
            try:
                return handler(self, ev)
            except Exception:
                # with the native hub os-ken's event loop ends on any exception a handler
                # lets out (its TaskExit is Exception): the controller would go deaf
                LOG.exception("handling %s failed", type(ev).__name__)
                return None
    return run


class ActiveLabController(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.intent = Intent.load(self.CONF.activelab_config)
        self.status_path = self.CONF.activelab_status
        self.logic = ControllerLogic(self.intent)
        self.datapaths = {}
        self.reactions = []
        self.pending = []          # events whose routes wait for the batch (see settle)
        self.outboxes = {}         # dpid -> queue of messages to send it, in order (send)
        self.started = time.time()
        self.last_status = None
        LOG.info("intent: mode %s, %d switches, %d links, %d services", self.intent.mode,
                 len(self.intent.switches), len(self.intent.links), len(self.intent.services))
        self.lock = threading.RLock()   # the logic is one: handlers and timer take turns
        self.timer = hub.spawn(self.run_timer)

    # ---------------------------------------------------------------- sending decisions

    def send(self, msgs):
        """Queue the logic's messages for their switches; each switch's own sender thread
        sends them in the order the logic made them. Returns how many were queued.

        No handler or timer ever waits on a switch: a switch's send queue holds 16 messages,
        and a burst (hundreds of flow and group changes) blocked whoever sent it. While the
        event loop was blocked that way the timer ran, and its group *modification* could
        overtake the group's *addition* still waiting in the burst (OFPGMFC_UNKNOWN_GROUP,
        then OFPBAC_BAD_OUT_GROUP for the flows using it: a 16-site lab lost paths that way).
        One queue and one sender per switch keep each switch's order, and a slow switch holds
        back no one else."""
        for msg in msgs:
            box = self.outboxes.get(msg.dpid)
            if box is None:
                box = self.outboxes[msg.dpid] = hub.Queue()
                threading.Thread(target=self.sender, args=(msg.dpid, box), daemon=True,
                                 name=f"send-{msg.dpid}").start()
            box.put(msg)
        return len(msgs)

    def sender(self, dpid, box):
        """Send switch dpid's queued messages, in order, on its current connection (messages
        for a switch that is not connected are dropped: it gets everything again when it
        connects)."""
        while True:
            msg = box.get()
            dp = self.datapaths.get(dpid)
            if dp is None:
                continue
            try:
                dp.send_msg(self.translate(dp, msg))
            except Exception:              # one bad message must not end the switch's sender
                LOG.exception("sending %r to %s", msg, self.logic.sw(dpid))

    def forget_queued(self, dpid):
        """A switch (re)connected or went away: what was queued for it before is stale (the
        logic sends it everything it needs on connecting)."""
        box = self.outboxes.get(dpid)
        while box is not None and not box.empty():
            box.get(block=False)

    def batch(self):
        """Before a decision: defer route work while more events wait behind this one (see
        ControllerLogic.sync); a burst is then handled by one computation."""
        self.logic.batching = not self.events.empty()

    def react(self, event, details, msgs, t_event):
        """Send and, for events that change forwarding, record how long the reaction took
        (an event whose route changes were deferred is recorded when its batch is sent)."""
        self.logic.batching = False
        count = self.send(msgs)
        for line in self.logic.take_notes():
            LOG.info("%s", line)
        if event and self.logic.owed():
            self.pending.append((event, details, t_event))
        elif count and event:
            self.record(event, details, t_event, count)
        self.settle()

    def settle(self, force=False):
        """Send the route changes deferred for a burst: when no event waits any more, or when
        the first deferred one has waited BATCH_MAX_S (a stream of packet-ins cannot hold
        them back)."""
        if not self.logic.owed():
            return
        if not (force or self.events.empty()
                or time.time() - self.logic.owed_since >= BATCH_MAX_S):
            return
        count = self.send(self.logic.flush())
        for line in self.logic.take_notes():
            LOG.info("%s", line)
        pending, self.pending = self.pending, []
        for event, details, t_event in pending if count else ():
            self.record(event, details, t_event, count)

    def record(self, event, details, t_event, count):
        t_done = time.time()
        reaction = dict(details, event=event, t_event=t_event, t_done=t_done,
                        ms=round((t_done - t_event) * 1000, 3), messages=count)
        self.reactions = (self.reactions + [reaction])[-MAX_REACTIONS:]
        LOG.info("reaction %s %s: %d messages in %.3f ms", event, details, count, reaction["ms"])

    def actions(self, dp, actions):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        out = []
        for action in actions:
            if action[0] == "output":
                if action[1] == CONTROLLER:
                    out.append(parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER))
                else:
                    out.append(parser.OFPActionOutput(action[1]))
            elif action[0] == "group":
                out.append(parser.OFPActionGroup(action[1]))
            elif action[0] == "set":
                out.append(parser.OFPActionSetField(**{action[1]: action[2]}))
            elif action[0] == "dec_ttl":
                out.append(parser.OFPActionDecNwTtl())
        return out

    def translate(self, dp, msg):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        if isinstance(msg, Flow):
            match = parser.OFPMatch(**msg.match)
            if msg.delete:
                return parser.OFPFlowMod(dp, table_id=msg.table, priority=msg.priority,
                                         command=ofp.OFPFC_DELETE_STRICT, match=match,
                                         out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY)
            inst = []
            if msg.actions:
                inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                                         self.actions(dp, msg.actions)))
            if msg.goto is not None:
                inst.append(parser.OFPInstructionGotoTable(msg.goto))
            return parser.OFPFlowMod(dp, cookie=msg.cookie, table_id=msg.table,
                                     priority=msg.priority, match=match, instructions=inst,
                                     idle_timeout=msg.idle_timeout,
                                     flags=ofp.OFPFF_SEND_FLOW_REM if msg.idle_timeout else 0)
        if isinstance(msg, Group):
            buckets = [parser.OFPBucket(watch_port=watch, watch_group=ofp.OFPG_ANY,
                                        actions=self.actions(dp, actions))
                       for watch, actions in msg.buckets]
            return parser.OFPGroupMod(dp, command=ofp.OFPGC_MODIFY if msg.modify else ofp.OFPGC_ADD,
                                      type_=ofp.OFPGT_FF, group_id=msg.group_id, buckets=buckets)
        if isinstance(msg, PacketOut):
            port = ofp.OFPP_TABLE if msg.port == TABLE else msg.port
            in_port = ofp.OFPP_CONTROLLER if msg.in_port == CONTROLLER else msg.in_port
            return parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                                       actions=[parser.OFPActionOutput(port)], data=msg.data)
        raise TypeError(f"unknown message {msg!r}")

    # ------------------------------------------------------------------------- events

    @staticmethod
    def live(dp, port):
        """What fast-failover watches: carrier, admin state and (where enabled) BFD."""
        return bool(port.state & dp.ofproto.OFPPS_LIVE) and not (
            port.config & dp.ofproto.OFPPC_PORT_DOWN)

    @staticmethod
    def carrier(dp, port):
        """The link itself: carrier and admin state, whatever BFD says."""
        return not (port.state & dp.ofproto.OFPPS_LINK_DOWN) and not (
            port.config & dp.ofproto.OFPPC_PORT_DOWN)

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @serialized
    def switch_features(self, ev):
        """A switch connects: start from empty tables (no flows, no groups)."""
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        dp.send_msg(parser.OFPFlowMod(dp, command=ofp.OFPFC_DELETE, table_id=ofp.OFPTT_ALL,
                                      out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                                      match=parser.OFPMatch()))
        dp.send_msg(parser.OFPGroupMod(dp, command=ofp.OFPGC_DELETE, group_id=ofp.OFPG_ALL))

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @serialized
    def state_change(self, ev):
        dp, now = ev.datapath, time.time()
        if ev.state == MAIN_DISPATCHER:
            self.forget_queued(dp.id)
            self.datapaths[dp.id] = dp
            ports = {no: self.live(dp, p) for no, p in dp.ports.items() if no <= dp.ofproto.OFPP_MAX}
            carriers = {no: self.carrier(dp, p) for no, p in dp.ports.items()
                        if no <= dp.ofproto.OFPP_MAX}
            LOG.info("switch %s (%016x) connected, ports %s", self.logic.sw(dp.id), dp.id,
                     sorted(ports))
            self.batch()
            self.react(None, {}, self.logic.switch_connected(dp.id, ports, now, carriers), now)
        elif dp.id in self.datapaths:
            LOG.info("switch %s (%016x) disconnected", self.logic.sw(dp.id), dp.id)
            del self.datapaths[dp.id]
            self.forget_queued(dp.id)
            self.batch()
            self.react("switch_down", {"dpid": dp.id}, self.logic.switch_disconnected(dp.id, now), now)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @serialized
    def port_status(self, ev):
        now = time.time()
        msg, dp = ev.msg, ev.msg.datapath
        port = msg.desc
        if port.port_no > dp.ofproto.OFPP_MAX:
            return
        live = msg.reason != dp.ofproto.OFPPR_DELETE and self.live(dp, port)
        carrier = msg.reason != dp.ofproto.OFPPR_DELETE and self.carrier(dp, port)
        LOG.info("port %s %s (state %#x)", self.logic.port_name(dp.id, port.port_no),
                 "live" if live else "carrier, not live" if carrier else "down", port.state)
        self.batch()
        self.react("port_up" if live else "port_down", {"dpid": dp.id, "port": port.port_no},
                   self.logic.port_changed(dp.id, port.port_no, live, now, carrier), now)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @serialized
    def packet_in(self, ev):
        now = time.time()
        msg = ev.msg
        in_port = msg.match["in_port"]
        self.batch()
        hosts_before = {ip: (h.dpid, h.port) for ip, h in self.logic.hosts.items()}
        proven_before = self.logic.proven_now
        msgs = self.logic.packet_in(msg.datapath.id, in_port, msg.data, now)
        moved = [ip for ip, h in self.logic.hosts.items()
                 if ip in hosts_before and hosts_before[ip] != (h.dpid, h.port)]
        proven = sorted(self.logic.proven_now - proven_before)
        if moved:
            self.react("host_moved", {"hosts": moved}, msgs, now)
        elif proven:               # LLDP proved a link that came back before BFD did
            self.react("link_proven", {"links": [[list(a), list(b)] for a, b in proven]}, msgs,
                       now)
        else:
            self.react(None, {}, msgs, now)
        for ip in moved:
            h = self.logic.hosts[ip]
            LOG.info("host %s moved to %s", self.logic.who(ip),
                     self.logic.port_name(h.dpid, h.port))

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    @serialized
    def flow_removed(self, ev):
        """Only an idle timeout ends a pin: a flow we deleted or replaced ourselves was already
        forgotten (or pinned anew, which this late report must not undo)."""
        msg = ev.msg
        if msg.reason != msg.datapath.ofproto.OFPRR_IDLE_TIMEOUT:
            return
        match = {k: v for k, v in msg.match.items()}
        self.batch()
        self.react(None, {}, self.logic.flow_removed(msg.datapath.id, match), time.time())

    # -------------------------------------------------------------------------- timer

    def run_timer(self):
        last = time.time()
        while True:
            with self.lock:
                try:
                    last = self.timer_round(last)
                except Exception:          # a bad round must not end health checking
                    LOG.exception("timer round failed")
            hub.sleep(TICK)

    def timer_round(self, last):
        """LLDP, health checks, deferred route work, the status file; returns the round's
        start time."""
        now = time.time()
        # starved (late by more than a health interval's share) or events still queued:
        # health verdicts wait (see ControllerLogic.tick)
        backlog = not self.events.empty() or now - last > STARVED_S
        before = {n: h.up for n, h in self.logic.health.items()}
        msgs = self.logic.tick(now, backlog=backlog)
        changed = {n: h.up for n, h in self.logic.health.items() if before[n] != h.up}
        for name, up in changed.items():
            LOG.info("server %s %s", name, "healthy" if up else "failed health checks")
        self.react("server_down" if any(v is False for v in changed.values()) else None,
                   {"servers": sorted(changed)}, msgs, now)
        self.settle(force=True)
        self.write_status()
        return now

    def write_status(self):
        status = dict(self.logic.status(), pid=os.getpid(), started=self.started,
                      connected=sorted(self.datapaths), reactions=self.reactions)
        text = json.dumps(status)
        if text == self.last_status:
            return
        tmp = f"{self.status_path}.tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, self.status_path)
        self.last_status = text
