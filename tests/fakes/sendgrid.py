"""SendGrid v3 mail send, as the ``sendgrid`` SDK calls it."""

from __future__ import annotations

import itertools

from tests.fakes.server import FakeProviders, Recorded, Reply

SEND = "sendgrid.send"
_ids = itertools.count(1)


def _accept(request: Recorded) -> Reply:
    # SendGrid answers 202 with an empty body and the message id in a header.
    return Reply(202, b"", {"X-Message-Id": f"sg-{next(_ids)}"})


def install(server: FakeProviders) -> None:
    server.route(SEND, "POST", r"/v3/mail/send", _accept)


def bad_address(index: int) -> Reply:
    """SendGrid's 400 for an invalid recipient address in personalization ``index``."""
    return Reply(
        400,
        {
            "errors": [
                {
                    "message": "Does not contain a valid address.",
                    "field": f"personalizations.{index}.to.0.email",
                    "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to",
                }
            ]
        },
    )
