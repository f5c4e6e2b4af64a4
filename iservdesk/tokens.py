"""API tokens for scripts (as JupyterHub's /hub/token): a person makes a named token with
an expiry on their overview; it is shown once and stored only as its hash, listed with
when it was last used, and revocable. Admins make tokens for service accounts (an account
of its own, `service:<name>`, never an IServ person) with admin rights.

A token works on the API with `Authorization: Bearer` or `X-Session-ID` (never in a URL,
where proxies and logs would keep it, and never under /desktop/, where only the browser's
cookie counts); it needs no CSRF token (a page cannot make a browser send it). It carries
its owner's rights as they are now (a person's token), or admin rights (a service
account's). Every use records when; revoked and expired ones are refused.
"""

import dataclasses
import datetime
import re
import secrets

from . import db, sessions
from .errors import BadRequest, NotFound

PREFIX = "isd_"  # tells a token from a session id, and a leaked one is easy to search for
MAX_LIFETIME = datetime.timedelta(days=366)
SERVICE = "service:"  # the uuid prefix of service accounts
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


@dataclasses.dataclass
class TokenSession:
    """What a token stands for where a request's session is asked about (web/auth.py)."""

    id_hash: str  # "token:<id>": per-token bookkeeping (event streams), never a session's
    expires_at: datetime.datetime
    last_seen_at: datetime.datetime
    token: db.ApiToken
    id_token: None = None


def is_token(value):
    return isinstance(value, str) and value.startswith(PREFIX)


def check_name(name):
    if not isinstance(name, str) or not NAME.match(name):
        raise BadRequest("Give the token a name: 1-64 letters, digits, spaces, '.', '_' or '-'.",
                         code="bad_token_name")
    return name


def lifetime(days):
    try:
        days = int(days)
    except (TypeError, ValueError):
        raise BadRequest("expires_in_days: a whole number of days, 1 to 366.", code="bad_expiry") from None
    if not 1 <= days <= MAX_LIFETIME.days:
        raise BadRequest("expires_in_days: a whole number of days, 1 to 366.", code="bad_expiry")
    return datetime.timedelta(days=days)


def create(user, name, days, actor, now, admin=False):
    """A new token of `user`: (the token, its row). The token itself exists only here."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = db.ApiToken.create(user=user, name=check_name(name), token_hash=sessions.digest(token), admin=admin,
                             created_by=actor, created_at=now, expires_at=now + lifetime(days))
    db.record("token.create", actor=actor, target=user.username, name=row.name, token=row.id,
              admin=admin, expires_at=row.expires_at.isoformat())
    return token, row


def service_account(name, now):
    """The service account `name` (made when new): a user row no IServ sign-in can be."""
    check_name(name)
    user, _ = db.User.get_or_create(uuid=SERVICE + name, defaults={
        "username": "service-" + re.sub(r"[^a-z0-9._-]", "-", name.lower()), "display_name": name,
        "created_at": now})
    return user


def resolve(token, now):
    """The live ApiToken (with .user) for `token`, its use recorded; None when unknown,
    revoked or expired."""
    if not is_token(token) or len(token) > 200:
        return None
    row = (db.ApiToken.select(db.ApiToken, db.User).join(db.User)
           .where(db.ApiToken.token_hash == sessions.digest(token)).first())
    if row is None or row.revoked_at is not None or now >= row.expires_at:
        return None
    db.ApiToken.update(last_used_at=now).where(db.ApiToken.id == row.id).execute()
    row.last_used_at = now
    return row


def revoke(row, actor, now):
    if row.revoked_at is None:
        db.ApiToken.update(revoked_at=now).where(db.ApiToken.id == row.id).execute()
        db.record("token.revoke", actor=actor, target=row.user.username, name=row.name, token=row.id)


def find(token_id, user=None):
    query = db.ApiToken.select(db.ApiToken, db.User).join(db.User).where(db.ApiToken.id == token_id)
    if user is not None:
        query = query.where(db.ApiToken.user == user)
    row = query.first()
    if row is None:
        raise NotFound("There is no such token.", code="no_token")
    return row


def json(row, now):
    state = "revoked" if row.revoked_at else "expired" if now >= row.expires_at else "active"
    return {"id": row.id, "name": row.name, "owner": row.user.username, "admin": row.admin, "state": state,
            "created_by": row.created_by, "created_at": row.created_at.isoformat(),
            "expires_at": row.expires_at.isoformat(),
            "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None}
