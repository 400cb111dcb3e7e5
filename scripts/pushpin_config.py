#!/usr/bin/env python3
"""Write a Pushpin configuration for ResolutionFlow's web processes into a directory.

    scripts/pushpin_config.py DIR --http 127.0.0.1:7999 --control-port 5561 \\
        --sig-key KEY --web 127.0.0.1:8001 --web 127.0.0.1:8002

Then ``pushpin --config DIR/pushpin.conf`` proxies ``--http`` to the web processes and
takes publishes on ``--control-port`` (the web processes' ``GRIP_URL`` is
``http://127.0.0.1:<control port>/?iss=pushpin&key=<sig key>``). Everything else Pushpin
needs (its run directory, its internal sockets, its logs) lives in DIR: several Pushpins
may run on one machine (the tests start their own).

Routes: Pushpin does not balance between targets, it fails over in the order listed. So the
work is split by path: pages, writes and the bell streams (``/notifications/events/``) go to
the first web process listed, the queue and handoff streams (and the handoff pages, under
``/handoffs/``) to the last; each takes over when the other is down. A stream costs its web
process one short request when it opens and one each time it re-checks its session (every
``RF_STREAM_SESSION_CHECK_SECONDS``); Pushpin holds it in between. Behind a real load
balancer, list that instead.

Debian's pushpin package expects a system-wide zurl (``/var/run/zurl``); this configuration
runs Pushpin's own zurl in DIR instead (it makes the requests to the web processes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

# Paths that go to the last web process first (escalations/urls.py): the queue and handoff
# streams, and the handoff pages beside them. The rest, bell streams included, to the first.
LAST_FIRST = ("/escalations/events/", "/handoffs/")

CONFIG = """\
# Written by scripts/pushpin_config.py: Pushpin in front of ResolutionFlow's web processes.
[global]
include={{libdir}}/internal.conf
rundir={rundir}
ipc_prefix=pushpin-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port={http}
logdir={logdir}
log_level=2
client_buffer_size=8192
client_maxconn={maxconn}
condure_bin=condure
zurl_bin=zurl

[proxy]
routesfile={routes}
# Our own zurl (Debian's internal.conf points at a system-wide one).
zurl_out_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in
zurl_out_stream_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in-stream
zurl_in_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-out
debug=false
auto_cross_origin=false
accept_x_forwarded_protocol=false
set_x_forwarded_protocol=proto-only
x_forwarded_for=
x_forwarded_for_trusted=
orig_headers_need_mark=
accept_pushpin_route=false
log_from=false
log_user_agent=false
# Every request to a web process is signed with this key (Grip-Sig); GRIP_URL carries it.
sig_iss=pushpin
sig_key={sig_key}
upstream_key=
updates_check=off

[handler]
push_in_spec=ipc://{{rundir}}/{{ipc_prefix}}push-in
push_in_sub_specs=ipc://{{rundir}}/{{ipc_prefix}}push-in-sub
push_in_sub_connect=false
# The control port: POST /publish/ (the web processes and workers publish events here).
push_in_http_addr={control_addr}
push_in_http_port={control_port}
push_in_http_max_headers_size=10000
push_in_http_max_body_size=1000000
stats_spec=ipc://{{rundir}}/{{ipc_prefix}}stats
command_spec=ipc://{{rundir}}/{{ipc_prefix}}command
# Messages a second to subscribers. Debian's 2,500 spread one escalation to 1,000 streams
# over 0.4 s (arrival p95 840 ms against 270 ms, docs/PERFORMANCE.md).
message_rate={message_rate}
message_hwm=25000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
"""


def routes(webs: list[str]) -> str:
    """Queue and handoff streams to the last web process first, the rest to the first; each
    route fails over to the others in order."""
    last_first = " ".join([webs[-1], *webs[:-1]])
    lines = [f"*,path_beg={path} {last_first}" for path in LAST_FIRST]
    return "\n".join([*lines, f"* {' '.join(webs)}", ""])


def write_config(
    directory: Path,
    *,
    http: str,
    control_port: int,
    sig_key: str,
    webs: list[str],
    control_addr: str = "127.0.0.1",
    maxconn: int = 50000,
    message_rate: int = 50000,
) -> Path:
    """Write DIR/pushpin.conf and DIR/routes (DIR/run, DIR/log made); return the config."""
    directory = Path(directory).resolve()
    (directory / "run").mkdir(parents=True, exist_ok=True)
    (directory / "log").mkdir(parents=True, exist_ok=True)
    (directory / "routes").write_text(routes(webs))
    config = directory / "pushpin.conf"
    config.write_text(
        CONFIG.format(
            rundir=directory / "run",
            logdir=directory / "log",
            routes=directory / "routes",
            http=http,
            maxconn=maxconn,
            sig_key=sig_key,
            control_addr=control_addr,
            control_port=control_port,
            message_rate=message_rate,
        )
    )
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--http", default="127.0.0.1:7999", help="[addr:]port browsers use")
    parser.add_argument("--control-port", type=int, default=5561)
    parser.add_argument("--sig-key", required=True)
    parser.add_argument("--web", action="append", required=True, help="host:port, repeatable")
    parser.add_argument("--message-rate", type=int, default=50000, help="messages/s to clients")
    args = parser.parse_args()
    config = write_config(
        args.directory,
        http=args.http,
        control_port=args.control_port,
        sig_key=args.sig_key,
        webs=args.web,
        message_rate=args.message_rate,
    )
    print(config)


if __name__ == "__main__":
    main()
