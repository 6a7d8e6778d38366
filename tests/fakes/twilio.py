"""Twilio's Messages resource (form-encoded POST), as the ``twilio`` SDK calls it."""

from __future__ import annotations

import itertools

from tests.fakes.server import FakeProviders, Recorded, Reply

MESSAGES = "twilio.messages"
_ids = itertools.count(1)


def _created(request: Recorded) -> Reply:
    form = {key: values[0] for key, values in request.form().items()}
    sid = request.path.split("/")[3]
    return Reply(
        201,
        {
            "sid": f"SM{next(_ids):032x}",
            "account_sid": sid,
            "to": form.get("To"),
            "from": form.get("From"),
            "body": form.get("Body"),
            "status": "queued",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{sid}/Messages/SM.json",
        },
    )


def install(server: FakeProviders) -> None:
    server.route(MESSAGES, "POST", r"/2010-04-01/Accounts/[^/]+/Messages\.json", _created)


def error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """Twilio's error document."""
    return Reply(
        status,
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        headers or {},
    )


def created_with_price(price: str, segments: str) -> Reply:
    return Reply(
        201,
        {
            "sid": "SM" + "ab" * 16,
            "status": "sent",
            "num_segments": segments,
            "price": price,
            "price_unit": "USD",
        },
    )
