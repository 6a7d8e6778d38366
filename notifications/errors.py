"""Domain errors the services raise. Only the API layer knows HTTP: it maps each class to a
status code and each problem's ``field`` (relative to one request item) to a JSON path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with one field. ``item`` is the position of the request item in a batch
    (None for a request that is not a batch); ``field`` is relative to that item."""

    field: str
    code: str
    message: str
    item: int | None = None

    def at(self, item: int) -> Problem:
        return Problem(self.field, self.code, self.message, item)


class DomainError(Exception):
    """Base of the errors a service raises on purpose; ``code`` is machine-readable."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, problems: Sequence[Problem] = ()):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.problems = list(problems)

    @classmethod
    def of(cls, problems: Sequence[Problem], *, code: str | None = None) -> DomainError:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return cls(f"{first.field}: {first.message}{more}", code=code, problems=problems)

    @classmethod
    def field(cls, field: str, code: str, message: str) -> DomainError:
        return cls.of([Problem(field, code, message)], code=cls.code)


class InvalidRequest(DomainError):
    """The request itself is wrong (a field's value, a missing variable, an unknown type)."""

    code = "invalid_request"


class NotPermitted(DomainError):
    """The sender may not do this (type, priority or scope not granted)."""

    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """The request collides with stored state (an idempotency key used with another body)."""

    code = "conflict"


class Unavailable(DomainError):
    """A store the service needs is down; retrying later can succeed."""

    code = "unavailable"
