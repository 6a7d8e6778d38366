"""Errors the services raise for the API to turn into 4xx/5xx JSON answers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldProblem:
    field: str
    code: str
    message: str


@dataclass
class ApiError(Exception):
    status: int
    code: str
    message: str
    errors: list[FieldProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "errors": [{"field": e.field, "code": e.code, "message": e.message} for e in self.errors],
        }


def invalid(field_name: str, code: str, message: str) -> ApiError:
    return ApiError(400, "invalid_request", f"{field_name}: {message}", [FieldProblem(field_name, code, message)])


def forbidden(field_name: str, code: str, message: str) -> ApiError:
    return ApiError(403, "forbidden", f"{field_name}: {message}", [FieldProblem(field_name, code, message)])
