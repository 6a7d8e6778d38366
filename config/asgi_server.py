"""The Daphne server of `manage.py serve`, with request bodies judged from their headers.

Twisted reads a request's whole body before Daphne hands the request to Django, so a limit
checked in a view comes too late: a client could make the server read and store any amount
before its 413, or its 401. Here the body is judged as soon as the headers are in (Twisted's
``Request.gotLength``). A body larger than the view at that path takes, or a chunked one, is
never read; nor is a body sent to an API endpoint without an Authorization header, whose answer
is a 401 whatever the body says. (A body with a wrong key is read, up to the endpoint's limit,
before Django answers 401: checking a key takes the database, which the reactor thread must not
wait on.) The request goes to Django with an empty body and its headers as sent, so the view
answers it as it does under gunicorn (401 or 403 first, then 413 or 411, as JSON), and the
connection closes after the answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server
from django.conf import settings
from django.urls import Resolver404, resolve

logger = logging.getLogger(__name__)

# After refusing a body, read and discard what the client still sends for this long (or this
# much) before closing, as gunicorn does: closing with unread data makes the kernel reset the
# connection, which can cut off the answer the client has not read yet.
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 64 * 1024


@dataclass(frozen=True)
class BodyPolicy:
    limit: int  # the largest body the view takes
    needs_authorization: bool  # a request without an Authorization header is refused unread


def body_policy(path: str) -> BodyPolicy:
    """What the view at ``path`` takes: the limit in the setting named by its
    ``body_limit_setting`` (else Django's DATA_UPLOAD_MAX_MEMORY_SIZE, for the admin's forms),
    and whether its ``body_needs_authorization``."""
    try:
        view_class = getattr(resolve(path).func, "view_class", None)
    except Resolver404:
        view_class = None
    return BodyPolicy(
        limit=getattr(settings, getattr(view_class, "body_limit_setting", "DATA_UPLOAD_MAX_MEMORY_SIZE")),
        needs_authorization=getattr(view_class, "body_needs_authorization", False),
    )


def _path_of(target: bytes) -> str:
    return unquote(urlsplit(target).path.decode("ascii", "replace")) or "/"


class BoundedWebRequest(WebRequest):
    def gotLength(self, length: int | None) -> None:
        # Called by the channel once all headers are in, before any of the body is read (and
        # before it would answer "Expect: 100-continue").
        if length is None or (length > 0 and not self._body_acceptable(length)):
            self._refuse_body()
            length = 0
        super().gotLength(length)

    def _body_acceptable(self, length: int) -> bool:
        try:
            policy = body_policy(_path_of(self.channel._path))
        except Exception:  # a target Django cannot even resolve: the limit of Django's forms
            logger.warning("no body policy for a request target", exc_info=True)
            policy = BodyPolicy(settings.DATA_UPLOAD_MAX_MEMORY_SIZE, needs_authorization=False)
        if policy.needs_authorization and not self.requestHeaders.hasHeader(b"Authorization"):
            return False  # the answer is a 401 whatever the body says
        return length <= policy.limit

    def _refuse_body(self) -> None:
        channel = self.channel
        self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue": the body must not come
        # The request is complete without its body; whatever follows on this connection is
        # that body, never a next request.
        channel.length = 0
        channel._transferDecoder = None
        channel.persistent = False
        channel.loseConnection = lambda: _close_after_answer(channel)


def _close_after_answer(channel) -> None:
    transport = channel.transport
    if transport is None:
        return
    channel._networkProducer.unregisterProducer()
    drained = 0

    def discard(data: bytes) -> None:
        nonlocal drained
        drained += len(data)
        if drained > _LINGER_BYTES:
            transport.abortConnection()

    channel.dataReceived = discard
    transport.loseWriteConnection()  # the answer goes out, then FIN
    transport.resumeProducing()
    channel.callLater(_LINGER_SECONDS, transport.abortConnection)


class BoundedHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = BoundedWebRequest
        return protocol


class BoundedServer(Server):
    """Daphne's server with :class:`BoundedHTTPFactory`. Daphne builds its HTTP factory inside
    ``run()`` (``self.http_factory = HTTPFactory(self)``); this property makes that assignment
    install ours."""

    @property
    def http_factory(self) -> BoundedHTTPFactory:
        return self._bounded_http_factory

    @http_factory.setter
    def http_factory(self, daphnes_factory: HTTPFactory) -> None:
        self._bounded_http_factory = BoundedHTTPFactory(self)
