"""The API-token routes (iservdesk/tokens.py): a person's own tokens, and admins' tokens
for service accounts. Tokens are made only from a browser session (the cookie and its CSRF
token), never with another token: a leaked token cannot make itself a successor."""

import bottle

from .. import db, tokens
from ..errors import Forbidden
from .api import request_value


def add_routes(app, context):
    require_user = context.auth.require_user
    clock = context.clock
    database = context.database

    def from_browser():
        identity = require_user()
        if not identity.via_cookie:
            raise Forbidden("Tokens are made and revoked in the browser, signed in with IServ.",
                            code="browser_only")
        return identity

    def admin():
        identity = from_browser()
        if not identity.is_admin:
            raise Forbidden("Only admins may do this.", code="admin_only")
        return identity

    @app.get("/api/tokens")
    def own_tokens():
        identity = require_user()
        bottle.response.set_header("Cache-Control", "no-store")
        rows = db.ApiToken.select(db.ApiToken, db.User).join(db.User).where(db.ApiToken.user == identity.user)
        return {"tokens": [tokens.json(row, clock()) for row in rows.order_by(db.ApiToken.id.desc())]}

    @app.post("/api/tokens")
    def new_token():
        """{"token": ..., shown this once, and what /api/tokens lists of it}."""
        identity = from_browser()
        with db.write(database):
            token, row = tokens.create(identity.user, request_value("name"),
                                       request_value("expires_in_days", 90), identity.user.username, clock())
        bottle.response.set_header("Cache-Control", "no-store")
        return dict(tokens.json(row, clock()), token=token)

    def revoked(identity, number, owner):
        """Revoke token `number` (of `owner` only, unless None); what it is now."""
        with db.write(database):
            tokens.revoke(tokens.find(number, owner), identity.user.username, clock())
        return tokens.json(tokens.find(number), clock())

    @app.delete("/api/tokens/<number:int>")
    def revoke_token(number):
        identity = from_browser()
        return revoked(identity, number, identity.user)

    @app.get("/api/admin/tokens")
    def all_tokens():
        identity = require_user()
        if not identity.is_admin:
            raise Forbidden("Only admins may do this.", code="admin_only")
        rows = db.ApiToken.select(db.ApiToken, db.User).join(db.User).order_by(db.ApiToken.id.desc())
        return {"tokens": [tokens.json(row, clock()) for row in rows]}

    @app.post("/api/admin/tokens")
    def service_token():
        """A token with admin rights for the service account `service` (made when new)."""
        identity = admin()
        with db.write(database):
            account = tokens.service_account(request_value("service") or "", clock())
            token, row = tokens.create(account, request_value("name") or request_value("service"),
                                       request_value("expires_in_days", 90), identity.user.username, clock(),
                                       admin=True)
        bottle.response.set_header("Cache-Control", "no-store")
        return dict(tokens.json(row, clock()), token=token)

    @app.delete("/api/admin/tokens/<number:int>")
    def revoke_any(number):
        return revoked(admin(), number, None)
