"""The bell end to end: Daphne started for real, a real inapp worker, the `websockets` client."""

from __future__ import annotations

import threading
import time

import httpx
import jwt
import pytest

from config.queues import channel_queues
from config.redis import get_redis
from notifications.models import InboxItem
from notifications.services import catalog, user_tokens
from templates_app.rendering import template_catalog
from tests.support.bell import Bell
from tests.support.factories import make_key, make_recipient, send_body
from tests.support.processes import start_daphne, start_worker, wait_for

pytestmark = [pytest.mark.django_db(databases="__all__", transaction=True), pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Instead of the suite's: Redis is emptied once for the module (below), not per test, as
    the servers shared by these tests keep their broker queues and channel layer in it."""
    catalog.clear()
    template_catalog.clear()
    yield


@pytest.fixture(scope="module")
def stack(tmp_path_factory, django_db_setup, django_db_blocker):
    """One Daphne and one inapp worker for the module (each takes seconds to start)."""
    client = get_redis()
    client.flushdb()
    tmp_path = tmp_path_factory.mktemp("inapp")
    daphne, port = start_daphne(tmp_path, INAPP_AUTH_TIMEOUT_SECONDS="1")
    try:
        worker = start_worker(tmp_path, channel_queues("inapp"))
    except BaseException:
        daphne.stop()
        raise
    try:
        yield port
    finally:
        worker.stop()
        daphne.stop()
        client.flushdb()


@pytest.fixture
def port(stack, demo_catalog) -> int:
    return stack


class Api:
    def __init__(self, port: int):
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {make_key()}"}, timeout=10
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


@pytest.mark.parametrize("how", ["forged", "expired", "garbage", "silent_first_message", "wrong_first_message"])
def test_a_bad_token_is_closed_with_4401_before_any_data(port, how, settings):
    if how == "forged":
        claims = {"sub": "alice", "aud": user_tokens.AUDIENCE, "exp": int(time.time()) + 60}
        token = jwt.encode(claims, "not-our-key-but-as-long-as-one-of-ours")
    elif how == "expired":
        claims = {"sub": "alice", "aud": user_tokens.AUDIENCE, "exp": int(time.time()) - 3600}
        token = jwt.encode(claims, settings.USER_TOKEN_KEYS[0])
    else:
        token = "not.a.token"
    if how in ("forged", "expired", "garbage"):
        bell = Bell(port, token)
    else:
        bell = Bell(port)  # the token must then come in the first message, within a second here
        if how == "wrong_first_message":
            bell.send({"type": "ping"})
    code, received = bell.closed_code()
    assert code == 4401
    assert received == []


def test_the_token_may_come_in_the_first_message(port):
    with Bell(port) as bell:
        bell.send({"type": "auth", "token": user_tokens.issue("alice").token})
        assert bell.next() == {"type": "hello", "v": 1}
        assert bell.next_of("unread_count")["count"] == 0
