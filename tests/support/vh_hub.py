#!/usr/bin/env python3
"""vh_hub.py CONFIG_JSON - a real NMDC hub for dclua's integration tests.

Runs the native NMDC hub core shipped in the PyPI wheel `verlihub-py`
(libverlihub.so / _verlihub_core.so: Verlihub's NMDCHubServer from the
transfix/verlihub fork) on 127.0.0.1, in the foreground, until SIGTERM/SIGINT.
tests/setup-peers.sh makes the venv this must run in; tests/support/peers.rs
writes CONFIG_JSON and starts this script with the venv's python.

CONFIG_JSON (written by the test harness):
  {"port": 29001,                      # TCP port on 127.0.0.1
   "config_dir": "/tmp/.../cfg",       # the core's own config/state dir
   "hub_name": "dclua-test-nmdc",
   "topic": "",
   "users": {"nick": {"password": "secret", "class": 1}, ...},
   "allow_guests": true,
   "core": {"key": "value", ...}}      # extra keys of the core's [hub] config

The core asks (OnGetConfig, section "hub") for: hub_name, hub_desc, hub_topic,
hub_host, hub_owner, hub_encoding, hub_security, opchat_name, listen_ip,
listen_port, max_users, max_conn_per_ip.  Nothing else is configurable; in
particular its $OpList holds only its bots (Hub-Security, OpChat), whatever a
user's class.

Login rules (the core delegates all of them to this script):
  * a nick in "users" is registered: the core sends $GetPass, and a $MyPass
    with another password gets $BadPass and the connection closed;
  * any other nick is admitted as an unregistered guest when "allow_guests"
    is true, refused with $ValidateDenide otherwise.

Database-free on purpose: no MySQL/MariaDB, no FastAPI, no bots, no hub
lists. Log lines (the core's and ours) go to stdout/stderr, which the harness
sends to hub.log.
"""
import json
import os
import signal
import sys
import threading
import time

from verlihub import verlihub_core as vc


def log(msg):
    print("vh_hub: " + msg, flush=True)


class Callbacks(vc.IHubEventCallback):
    """Answers the core's configuration and authentication questions."""

    def __init__(self, core_config, users, allow_guests):
        super().__init__()
        self.core_config = core_config
        self.users = users
        self.allow_guests = allow_guests

    def OnGetConfig(self, section, key, default_val):
        if section == "hub" and key in self.core_config:
            return str(self.core_config[key])
        return default_val

    def OnValidateNick(self, nick, ip):
        # -1 refuses the nick, 0 admits a guest, > 0 is a registered user's
        # class: the core then asks for a password and calls OnCheckPassword.
        user = self.users.get(str(nick))
        if user is not None:
            return max(int(user.get("class", 1)), 1)
        if self.allow_guests:
            return 0
        log("refusing unregistered nick %r (guests not allowed)" % str(nick))
        return -1

    def OnCheckPassword(self, nick, password):
        # -1 = wrong password ($BadPass), >= 0 = the user's class.
        user = self.users.get(str(nick))
        if user is None or str(password) != str(user.get("password", "")):
            log("wrong password for %r" % str(nick))
            return -1
        return max(int(user.get("class", 1)), 1)

    def OnLog(self, level, message):
        pass  # the core already writes every line to stderr


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
    port = int(cfg["port"])
    cfgdir = cfg["config_dir"]
    os.makedirs(cfgdir, exist_ok=True)
    core = {
        "hub_name": cfg.get("hub_name", "dclua-test-nmdc"),
        "hub_desc": "verlihub-py NMDC test hub (loopback only)",
        "hub_topic": cfg.get("topic", ""),
        "hub_host": "127.0.0.1:%d" % port,
        "hub_owner": "dclua-tests",
        "hub_encoding": "UTF-8",
        "listen_port": str(port),
        "listen_ip": "127.0.0.1",
        "max_users": "1000",
        # every test client comes from 127.0.0.1; the core's default is 5
        "max_conn_per_ip": "1000",
    }
    core.update({str(k): str(v) for k, v in cfg.get("core", {}).items()})

    ctx = vc.HubContext.Create(cfgdir)
    if ctx is None:
        sys.exit("vh_hub: HubContext.Create(%s) failed" % cfgdir)
    cb = Callbacks(core, cfg.get("users", {}), bool(cfg.get("allow_guests", True)))
    ctx.SetEventCallback(cb)
    if not ctx.Initialize():
        sys.exit("vh_hub: HubContext.Initialize() failed")
    # Work around a bug in the bundled socket layer: cConnChoose::AddConn
    # grows its fd-indexed table to fd + fd/4 entries, which is too small
    # (out-of-bounds write, the listener is never polled, clients are never
    # greeted) when the listening socket gets fd 3, as it does in a fresh
    # Python process. Holding 8 low descriptors pushes it to fd 11 or above.
    spare_fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(8)]
    if not ctx.Start(port, "127.0.0.1"):
        sys.exit("vh_hub: HubContext.Start(%d, 127.0.0.1) failed" % port)
    log("NMDC hub running on dchub://127.0.0.1:%d (pid %d, %d registered nicks)"
        % (port, os.getpid(), len(cfg.get("users", {}))))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set() and ctx.IsRunning():
        stop.wait(0.2)
    log("stopping")
    ctx.Stop()
    for fd in spare_fds:
        os.close(fd)
    time.sleep(0.1)


if __name__ == "__main__":
    main()
