"""Sessions: opaque random ids (only their hash is stored), expiry, CSRF tokens, roles.

A session id is 256 random bits. It travels in the session cookie (its name comes from
cookie_name(): `__Host-`-prefixed under https) or, for API clients, in `?session_id=`,
`X-Session-ID` or `Authorization: Bearer`. The CSRF token is an HMAC of the session's hash
under SECRET_KEY: bound to the session, nothing to store. Who the user is comes from the
sign-in (oidc.py); this module only remembers it; matching groups and roles against the
settings is case-insensitive here, whatever the caller hands in.
"""

import dataclasses
import datetime
import hashlib
import hmac
import secrets

from . import db

COOKIE = "iservdesk_session"
# Browsers accept a __Host- cookie only with Secure, Path=/ and no Domain, so no sibling
# host (or plain-http page) of the same site can set or shadow it.
HOST_PREFIX = "__Host-"
# last_seen_at is written at most this often: a request must not cost a write.
TOUCH_INTERVAL = datetime.timedelta(minutes=1)


def new_secret():
    """A URL-safe random string with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def cookie_name(secure, name=COOKIE):
    """The name a portal cookie (default: the session cookie) has under this config:
    `__Host-<name>` when PUBLIC_URL is https (`secure`), else plain `<name>` (browsers
    refuse __Host- cookies without Secure, and Secure ones over http)."""
    return HOST_PREFIX + name if secure else name


def digest(value):
    return hashlib.sha256(value.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Policy:
    """What sign-in settings mean for roles and expiry (built from Config)."""

    admin_names: tuple
    teacher_names: tuple
    allowed_names: tuple
    idle_timeout: datetime.timedelta
    lifetime: datetime.timedelta

    @classmethod
    def from_config(cls, config):
        return cls(config.role_admin, config.role_teacher, config.allowed_groups,
                   config.session_idle_timeout, config.session_lifetime)

    def memberships(self, user):
        """Group account names and role ids of `user`, lower-cased."""
        return _lowered(user.groups) | _lowered(user.roles)

    def is_admin(self, user):
        return bool(self.memberships(user) & _lowered(self.admin_names))

    def is_teacher(self, user):
        return bool(self.memberships(user) & _lowered(self.teacher_names))

    def may_sign_in(self, user):
        return (not self.allowed_names or self.is_admin(user)
                or bool(self.memberships(user) & _lowered(self.allowed_names)))


def _lowered(names):
    # IServ matches group and role names case-insensitively; so do we, on both sides.
    return {name.lower() for name in names or () if isinstance(name, str)}


def create(user, policy, now, id_token=None):
    """Start a session for `user`; return its id (the only time the id exists in clear)."""
    session_id = new_secret()
    db.Session.create(id_hash=digest(session_id), user=user, created_at=now, last_seen_at=now,
                      expires_at=now + policy.lifetime, id_token=id_token)
    return session_id


def resolve(session_id, policy, now, touch=True):
    """The live Session for `session_id` (with .user loaded), or None.

    Expired sessions (absolute lifetime or idle timeout) are deleted on sight. With
    `touch`, counts as use: last_seen_at is written at most once per TOUCH_INTERVAL.
    """
    if not session_id or len(session_id) > 200:
        return None
    session = (db.Session.select(db.Session, db.User).join(db.User)
               .where(db.Session.id_hash == digest(session_id)).first())
    if session is None:
        return None
    if now >= session.expires_at or now - session.last_seen_at >= policy.idle_timeout:
        session.delete_instance()
        return None
    if touch and now - session.last_seen_at >= TOUCH_INTERVAL:
        (db.Session.update(last_seen_at=now)
         .where(db.Session.id_hash == session.id_hash).execute())
        session.last_seen_at = now
    return session


def end(session_id):
    """Delete the session; returns the ended Session or None. Idempotent."""
    session = db.Session.get_or_none(db.Session.id_hash == digest(session_id))
    if session is not None:
        session.delete_instance()
    return session


def delete_expired(policy, now):
    """Remove sessions past their lifetime or idle timeout; returns how many."""
    return (db.Session.delete()
            .where((db.Session.expires_at <= now)
                   | (db.Session.last_seen_at <= now - policy.idle_timeout))
            .execute())


def csrf_token(secret_key, session_id):
    return hmac.new(secret_key.encode(), b"csrf:" + digest(session_id).encode(),
                    hashlib.sha256).hexdigest()


def csrf_valid(secret_key, session_id, token):
    return bool(token) and hmac.compare_digest(csrf_token(secret_key, session_id), token)
