"""End-user tokens: issued for one user, verified with any current key, refused otherwise."""

import time

import jwt
import pytest

from notifications.services import user_tokens
from notifications.services.user_tokens import InvalidUserToken


def test_a_token_names_its_user_and_expires():
    issued = user_tokens.issue("alice", ttl_seconds=60)
    assert user_tokens.verify(issued.token) == "alice"
    assert issued.expires_at - int(time.time()) in range(58, 61)


@pytest.mark.parametrize(
    "forge",
    [
        lambda key: jwt.encode({"sub": "alice", "aud": "notify:user", "exp": int(time.time()) + 60}, "wrong-key", "HS256"),
        lambda key: jwt.encode({"sub": "alice", "aud": "other", "exp": int(time.time()) + 60}, key, "HS256"),
        lambda key: jwt.encode({"sub": "alice", "aud": "notify:user", "exp": int(time.time()) - 60}, key, "HS256"),
        lambda key: jwt.encode({"sub": "alice", "aud": "notify:user"}, key, "HS256"),
        lambda key: jwt.encode({"sub": "a b", "aud": "notify:user", "exp": int(time.time()) + 60}, key, "HS256"),
        lambda key: jwt.encode({"sub": "alice", "aud": "notify:user", "exp": int(time.time()) + 60}, None, "none"),
        lambda key: "not.a.token",
        lambda key: "",
    ],
    ids=["forged", "audience", "expired", "no-expiry", "bad-subject", "alg-none", "garbage", "empty"],
)
def test_forged_expired_or_foreign_tokens_are_refused(forge, settings):
    with pytest.raises(InvalidUserToken):
        user_tokens.verify(forge(settings.USER_TOKEN_KEYS[0]))


def test_keys_rotate_without_logging_anyone_out(settings):
    settings.USER_TOKEN_KEYS = ["old-key"]
    old = user_tokens.issue("bob").token
    settings.USER_TOKEN_KEYS = ["new-key", "old-key"]
    assert user_tokens.verify(old) == "bob"
    new = user_tokens.issue("bob").token
    assert jwt.decode(new, "new-key", algorithms=["HS256"], audience="notify:user")["sub"] == "bob"
    settings.USER_TOKEN_KEYS = ["new-key"]
    assert user_tokens.verify(new) == "bob"
    with pytest.raises(InvalidUserToken):
        user_tokens.verify(old)


def test_lifetimes_are_bounded():
    with pytest.raises(ValueError):
        user_tokens.issue("alice", ttl_seconds=0)
    with pytest.raises(ValueError):
        user_tokens.issue("alice", ttl_seconds=10**9)
