"""A steady stream of single sends against a live web server, from a client that behaves as
a real one must: it retries the same request, with the same idempotency key, until the
service answers (connection refused, 503, or the key still in progress mean "try again")."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

URL = "/api/v1/notifications"
RETRY_PAUSE_SECONDS = 0.25
# Answers after which the same request is tried again; anything else but 202 is a finding.
RETRY_STATUSES = {502, 503, 504}

# (type, priority, data): one cycle of ten sends. security_alert goes out on all four channels.
MIX = (
    ("security_alert", "critical", {"event": "New sign-in"}),
    ("order_shipped", "normal", {"name": "Ada", "order_id": "A-1"}),
    ("payment_confirmed", "high", {"name": "Ada", "amount": "$5", "order_id": "A-2"}),
    ("order_shipped", "normal", {"name": "Ada", "order_id": "A-3"}),
    ("security_alert", "critical", {"event": "Password changed"}),
    ("promotion", "low", {"headline": "Sale", "offer": "10% off"}),
    ("order_shipped", "normal", {"name": "Ada", "order_id": "A-4"}),
    ("payment_confirmed", "high", {"name": "Ada", "amount": "$7", "order_id": "A-5"}),
    ("security_alert", "critical", {"event": "New device"}),
    ("order_shipped", "normal", {"name": "Ada", "order_id": "A-6"}),
)


@dataclass
class Accepted:
    key: str
    notification_id: str
    type: str
    priority: str
    outcome: str
    scheduled_at: float  # wall clock (time.time()), comparable with the database's timestamps
    accepted_at: float
    attempts: int


@dataclass
class StreamResult:
    accepted: list[Accepted] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)  # keys never answered 202 before the deadline
    unexpected: list[tuple[int, str]] = field(default_factory=list)  # (status, body) neither 202 nor retryable
    retried_requests: int = 0


class SendStream:
    """Sends ``rate`` notifications a second to ``users`` in turn, each from its own thread
    (a slow answer does not slow the stream), until stopped."""

    def __init__(self, base_url: str, api_key: str, users: list[str], *, rate: float, give_up_after: float = 90.0):
        self.base_url = base_url
        self.api_key = api_key
        self.users = users
        self.rate = rate
        self.give_up_after = give_up_after
        self.result = StreamResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._local = threading.local()
        # Enough threads for every request retrying through an outage of several seconds.
        self._pool = ThreadPoolExecutor(max_workers=int(rate * 8), thread_name_prefix="send")
        self._thread = threading.Thread(target=self._run, name="send-stream", daemon=True)

    def start(self) -> SendStream:
        self._thread.start()
        return self

    def stop(self, *, abandon: bool = False) -> StreamResult:
        """Stop sending new requests; wait for those under way to be answered or given up
        (``abandon``: give up on them at once, e.g. when the test already failed)."""
        self._stop.set()
        if abandon:
            self._abandon.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        return self.result

    def accepted(self) -> list[Accepted]:
        with self._lock:
            return list(self.result.accepted)

    def _run(self) -> None:
        started = time.monotonic()
        for number in itertools.count():
            if self._stop.is_set():
                return
            due = started + number / self.rate
            pause = due - time.monotonic()
            if pause > 0 and self._stop.wait(pause):
                return
            type_key, priority, data = MIX[number % len(MIX)]
            body = {
                "user_id": self.users[number % len(self.users)],
                "type": type_key,
                "priority": priority,
                "data": data,
                "idempotency_key": f"fault-{uuid.uuid4().hex}",
            }
            self._pool.submit(self._send_until_answered, body, time.time())

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.api_key}"
        return session

    def _send_until_answered(self, body: dict, scheduled_at: float) -> None:
        deadline = time.monotonic() + self.give_up_after
        attempts = 0
        while time.monotonic() < deadline and not self._abandon.is_set():
            attempts += 1
            try:
                response = self._session().post(self.base_url + URL, json=body, timeout=15)
            except requests.RequestException:
                self._pause_before_retry()
                continue
            if response.status_code == 202:
                answer = response.json()
                accepted = Accepted(
                    key=body["idempotency_key"],
                    notification_id=answer["id"],
                    type=body["type"],
                    priority=body["priority"],
                    outcome=answer["outcome"],
                    scheduled_at=scheduled_at,
                    accepted_at=time.time(),
                    attempts=attempts,
                )
                with self._lock:
                    self.result.accepted.append(accepted)
                    self.result.retried_requests += attempts > 1
                return
            if response.status_code in RETRY_STATUSES or _in_progress(response):
                self._pause_before_retry()
                continue
            with self._lock:
                self.result.unexpected.append((response.status_code, response.text[:500]))
            return
        with self._lock:
            self.result.unanswered.append(body["idempotency_key"])

    def _pause_before_retry(self) -> None:
        self._session().close()  # a fresh connection: the server may have restarted
        time.sleep(RETRY_PAUSE_SECONDS)


def _in_progress(response: requests.Response) -> bool:
    """409 "this key is still being processed": the earlier attempt has not finished yet."""
    if response.status_code != 409:
        return False
    try:
        return response.json().get("code") == "idempotency_in_progress"
    except ValueError:
        return False
