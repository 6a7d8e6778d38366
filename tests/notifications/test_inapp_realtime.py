"""The bell end to end: Daphne started for real, a real inapp worker, the `websockets` client."""

from __future__ import annotations

import threading
import time

import httpx
import jwt
import pytest

from config.queues import channel_queues
from config.redis import get_redis
from delivery.services import presence
from notifications.models import ALL_SCOPES, InboxItem
from notifications.services import broadcasts, catalog, user_tokens
from templates_app.rendering import template_catalog
from tests.support.bell import Bell
from tests.support.browser import HeadlessChromium
from tests.support.factories import make_key, make_recipient, send_body
from tests.support.processes import BANNER, start_daphne, start_worker, wait_for

pytestmark = [pytest.mark.django_db(databases="__all__", transaction=True), pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Instead of the suite's: Redis is emptied once for the module (below), not per test, as
    the servers shared by these tests keep their broker queues and channel layer in it."""
    catalog.clear()
    template_catalog.clear()
    yield


@pytest.fixture(scope="module")
def servers(tmp_path_factory, django_db_setup, django_db_blocker):
    """Two Daphne processes and one inapp worker for the module, started side by side (each
    takes seconds); stopped with SIGKILL, as nothing they hold needs a clean shutdown."""
    client = get_redis()
    client.flushdb()
    tmp_path = tmp_path_factory.mktemp("inapp")
    started = []
    try:
        for _ in range(2):
            started.append(start_daphne(tmp_path, wait=False, INAPP_AUTH_TIMEOUT_SECONDS="1"))
        started.append((start_worker(tmp_path, channel_queues("inapp")), None))
        for process, _ in started[:2]:
            process.wait_for_log(BANNER, timeout=60)
        yield started[0][1], started[1][1]
    finally:
        for process, _ in started:
            process.kill_group()
        client.flushdb()


@pytest.fixture
def port(servers, demo_catalog) -> int:
    return servers[0]


@pytest.fixture
def second_port(servers) -> int:
    """Another Daphne process on the same Redis (connection routing across servers)."""
    return servers[1]


class Api:
    def __init__(self, port: int):
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {make_key(scopes=ALL_SCOPES)}"}, timeout=10
        )

    def token(self, user_id: str) -> str:
        response = self.http.post(f"/api/v1/recipients/{user_id}/token")
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def send(self, user_id: str, **body) -> str:
        response = self.http.post("/api/v1/notifications", json=send_body(user_id, channels=["inapp"], **body))
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def sent(self, notification_id: str) -> bool:
        return self.http.get(f"/api/v1/notifications/{notification_id}").json()["status"] == "sent"


def test_a_send_reaches_the_bell_of_its_user_only_and_the_sse_stream_too(port):
    api = Api(port)
    make_recipient("alice")
    make_recipient("bob")
    alice_token = api.token("alice")
    with Bell(port, alice_token) as alice, Bell(port, api.token("bob")) as bob:
        assert alice.next() == {"type": "hello", "v": 1}
        assert alice.next_of("unread_count")["count"] == 0
        bob.next_of("unread_count")
        with httpx.stream(
            "GET", f"http://127.0.0.1:{port}/api/v1/me/stream", params={"token": alice_token}, timeout=10
        ) as sse:
            lines = sse.iter_lines()
            assert next(lines) == "retry: 3000"
            assert _sse_event(lines)[0] == "unread_count"

            notification_id = api.send("alice", data={"name": "Ada", "order_id": "A-7"})
            frame = alice.next_of("notification")
            assert frame["id"] == frame["cursor"] == notification_id
            assert frame["title"] and "A-7" in frame["body"] and frame["category"] == "transactional"
            assert alice.next_of("unread_count")["count"] == 1

            event, event_id, data = _sse_event(lines)
            assert (event, event_id, data["id"]) == ("notification", notification_id, notification_id)

        # The provider published to a live connection: the inbox item is marked delivered.
        wait_for(lambda: InboxItem.objects.for_user("alice").get(notification_id=notification_id).delivered_at)

        # Reading on one connection updates the badge of every connection of the user.
        alice.send({"type": "read", "ids": [notification_id]})
        assert alice.next_of("unread_count")["count"] == 0
        alice.send({"type": "ping"})
        assert alice.next_of("pong") == {"type": "pong"}

        # Bob's token never joins alice's group: his next notification is his own.
        own = api.send("bob")
        assert bob.next_of("notification")["id"] == own
        assert [f for f in bob.frames if f["type"] == "notification"] == [bob.frames[-1]]


def _sse_event(lines) -> tuple[str, str | None, dict]:
    import json

    event, event_id, data = "", None, None
    for line in lines:
        if line.startswith(":") or line.startswith("retry:"):
            continue
        if not line:
            if data is not None:
                return event, event_id, data
            continue
        name, _, value = line.partition(": ")
        if name == "event":
            event = value
        elif name == "id":
            event_id = value
        elif name == "data":
            data = json.loads(value)
    raise AssertionError("the stream ended")


def test_resume_replays_the_missed_ones_in_order_then_live_ones_without_duplicates(port):
    api = Api(port)
    make_recipient("alice")
    token = api.token("alice")
    with Bell(port, token) as bell:
        bell.next_of("unread_count")
        first = api.send("alice")
        cursor = bell.next_of("notification")["cursor"]
        assert cursor == first
    # Offline: these stay in the inbox (nobody to publish to).
    missed = [api.send("alice") for _ in range(3)]
    wait_for(lambda: all(api.sent(i) for i in missed), message="the missed ones sent")
    stored = InboxItem.objects.for_user("alice").filter(notification_id__in=missed)
    assert [item.delivered_at for item in stored] == [None] * 3  # nobody to deliver to

    # Reconnect with the cursor while another notification is being sent.
    live: list[str] = []
    sender = threading.Thread(target=lambda: live.append(api.send("alice")))
    with Bell(port, token) as bell:
        bell.next_of("hello")
        sender.start()
        bell.send({"type": "resume", "cursor": cursor})
        sender.join()
        received = [f["id"] for f in bell.notifications(4)]
        # A marker sent last: a duplicate of anything before it would have come first.
        marker = api.send("alice")
        assert bell.next_of("notification")["id"] == marker
    # The live one came before the replay (it was published while the socket waited for the
    # resume) or after it (if the replay had it already, its live frame was dropped): once.
    assert sorted(received) == sorted([*missed, *live])
    assert [i for i in received if i in missed] == missed  # in order
    assert [f["id"] for f in bell.frames if f["type"] == "notification"] == [*received, marker]


def test_ack_marks_replayed_notifications_and_their_deliveries_delivered(port):
    api = Api(port)
    make_recipient("alice")
    missed = api.send("alice")
    wait_for(lambda: api.sent(missed))
    with Bell(port, api.token("alice"), cursor=_before(missed)) as bell:
        assert bell.next_of("notification")["id"] == missed
        bell.send({"type": "ack", "ids": [missed]})
        bell.send({"type": "ping"})
        bell.next_of("pong")
    assert InboxItem.objects.for_user("alice").get(notification_id=missed).delivered_at is not None
    status = api.http.get(f"/api/v1/notifications/{missed}").json()
    assert [c["status"] for c in status["channels"]] == ["delivered"]  # the in-app delivery, confirmed


def _before(notification_id: str) -> str:
    """A cursor just before this notification (the cursor of nothing seen yet)."""
    import uuid

    return str(uuid.UUID(int=uuid.UUID(notification_id).int - 1))


def test_sse_resumes_from_last_event_id(port):
    api = Api(port)
    make_recipient("alice")
    first, second, third = (api.send("alice") for _ in range(3))
    wait_for(lambda: api.sent(third))
    headers = {"Authorization": f"Bearer {api.token('alice')}", "Last-Event-ID": first}
    with httpx.stream("GET", f"http://127.0.0.1:{port}/api/v1/me/stream", headers=headers, timeout=10) as sse:
        lines = sse.iter_lines()
        assert [_sse_event(lines)[1] for _ in range(2)] == [second, third]
        assert _sse_event(lines)[2] == {"type": "unread_count", "count": 3}


def test_a_user_on_another_server_gets_what_the_worker_sent(port, second_port):
    api = Api(port)
    make_recipient("alice")
    token = api.token("alice")
    with Bell(port, token) as here, Bell(second_port, token) as there:
        here.next_of("unread_count")
        there.next_of("unread_count")
        assert presence.connection_count("alice") == 2  # across both processes
        sent = api.send("alice")
        assert there.next_of("notification")["id"] == here.next_of("notification")["id"] == sent
    wait_for(lambda: presence.connection_count("alice") == 0, message="both connections to leave")


def test_a_bad_token_is_closed_with_4401_before_any_data(port, settings):
    forged = {"sub": "alice", "aud": user_tokens.AUDIENCE, "exp": int(time.time()) + 60}
    expired = {"sub": "alice", "aud": user_tokens.AUDIENCE, "exp": int(time.time()) - 3600}
    for token in (
        jwt.encode(forged, "not-our-key-but-as-long-as-one-of-ours"),
        jwt.encode(expired, settings.USER_TOKEN_KEYS[0]),
        "not.a.token",
    ):
        assert Bell(port, token).closed_code() == (4401, [])
    # Without a token in the URL it must come in the first message (within a second here).
    assert Bell(port).closed_code() == (4401, [])
    wrong_first = Bell(port)
    wrong_first.send({"type": "ping"})
    assert wrong_first.closed_code() == (4401, [])


def test_the_token_may_come_in_the_first_message(port):
    with Bell(port) as bell:
        bell.send({"type": "auth", "token": user_tokens.issue("alice").token})
        assert bell.next() == {"type": "hello", "v": 1}
        assert bell.next_of("unread_count")["count"] == 0


def test_the_bell_page_in_headless_chromium(port, tmp_path):
    api = Api(port)
    make_recipient("alice")
    browser = HeadlessChromium(tmp_path)
    try:
        browser.open(f"http://127.0.0.1:{port}/inbox/?token={api.token('alice')}")
        status = "(document.getElementById('status') || {}).textContent"  # null until the page is in
        wait_for(lambda: browser.evaluate(status) == "live (WebSocket)", message="the bell to connect")
        assert browser.evaluate("document.getElementById('badge').hidden") is True

        api.send("alice", data={"name": "Ada", "order_id": "B-42"})
        badge = "(b => b.hidden ? '' : b.textContent)(document.getElementById('badge'))"
        wait_for(lambda: browser.evaluate(badge) == "1", message="the badge to rise")
        browser.evaluate("document.getElementById('bell-button').click()")
        assert "B-42" in browser.evaluate("document.querySelector('#list li.unread').textContent")
        shot = browser.screenshot(tmp_path / "bell.png")
        print(f"bell page screenshot: {shot}")

        browser.evaluate("document.querySelector('#list li.unread').click()")  # marks it read
        wait_for(lambda: browser.evaluate(badge) == "", message="the badge to drop")
        assert InboxItem.objects.for_user("alice").get().read_at is not None
    finally:
        browser.close()


def test_a_broadcast_reaches_every_connected_user(port):
    api = Api(port)
    with Bell(port, api.token("alice")) as alice, Bell(port, api.token("bob")) as bob:
        alice.next_of("unread_count")
        bob.next_of("unread_count")
        broadcast = str(broadcasts.create(title="Maintenance tonight").id)
        for bell in (alice, bob):
            assert bell.next_of("notification")["id"] == broadcast
            assert bell.next_of("unread_count")["count"] == 1
