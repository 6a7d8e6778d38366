"""The fake provider server as a process of its own (bench/delivery: its CPU counted apart).

    python -m tests.fakes.serve [--port P] [--dir D]

Serves SendGrid, Twilio, Google OAuth and FCM (as an HTTPS proxy for fcm.googleapis.com) as
the tests' fixture does, without keeping the requests (it counts them per route). Writes a
service-account file for FIREBASE_CREDENTIALS into ``--dir`` and prints one JSON line: its
``url``, the ``ca_bundle`` to trust (REQUESTS_CA_BUNDLE) and the ``service_account`` path.

Control endpoints (for a benchmark script):
  POST /_control/outage   {"route": "sendgrid.send", "status": 503}  every request to the route
                          gets that status until
  POST /_control/recover  {"route": "sendgrid.send"}
  GET  /_control/counts   requests per route so far
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import threading
from pathlib import Path

from tests.fakes import google, sendgrid, twilio
from tests.fakes.server import FakeProviders, Recorded, Reply


def build(port: int = 0) -> FakeProviders:
    server = FakeProviders(tls_hosts=[google.FCM_HOST, google.IAM_HOST], record=False, port=port)
    for module in (sendgrid, twilio, google):
        module.install(server)

    def outage(request: Recorded) -> Reply:
        body = request.json() or {}
        status = int(body.get("status", 503))
        server.outage(body["route"], Reply(status, {"errors": [{"message": f"fake outage ({status})"}]}))
        return Reply(200, {"route": body["route"], "status": status})

    def recover(request: Recorded) -> Reply:
        server.outage((request.json() or {})["route"], None)
        return Reply(200, {"recovered": True})

    server.route("control.outage", "POST", r"/_control/outage", outage)
    server.route("control.recover", "POST", r"/_control/recover", recover)
    server.route("control.counts", "GET", r"/_control/counts", lambda request: Reply(200, dict(server.counts)))
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="0: a free port (the printed url says which)")
    parser.add_argument("--dir", default="", help="where to write the service-account file (default: a temp dir)")
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="notify-fake-"))
    folder.mkdir(parents=True, exist_ok=True)
    server = build(args.port).start()
    account = google.write_service_account(server, folder)
    print(
        json.dumps({"url": server.url, "ca_bundle": str(server.ca_bundle), "service_account": str(account)}), flush=True
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):  # (a plain wait might not wake for the signal)
        pass
    server.stop()


if __name__ == "__main__":
    main()
