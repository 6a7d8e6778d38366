"""Bodies of the end-user API (``/api/v1/me/``) and of the user-token endpoint."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

_ANSWER = ConfigDict(extra="forbid")
_REQUEST = ConfigDict(extra="forbid")


class InboxItemOut(BaseModel):
    model_config = _ANSWER
    id: str
    type: str
    title: str
    body: str
    action_url: str
    category: str
    created_at: str
    cursor: str = Field(description="Give it back as `cursor` (lists, newest first) or `resume` (live streams)")
    delivered: bool
    seen: bool
    read: bool


class InboxPage(BaseModel):
    model_config = _ANSWER
    items: list[InboxItemOut]
    next_cursor: str | None = Field(description="The next (older) page's cursor; null on the last page")
    unread_count: int


class UnreadCount(BaseModel):
    model_config = _ANSWER
    unread_count: int


class MarkResult(BaseModel):
    model_config = _ANSWER
    changed: int
    unread_count: int


class MarkManyRequest(BaseModel):
    model_config = _REQUEST
    ids: Annotated[list[str], Field(min_length=1, max_length=500)]


class UserTokenRequest(BaseModel):
    model_config = _REQUEST
    ttl_seconds: int | None = Field(default=None, gt=0, description="Lifetime; the server's default and maximum apply")


class UserTokenResponse(BaseModel):
    model_config = _ANSWER
    token: str
    user_id: str
    expires_at: int = Field(description="Unix seconds")
