"""Sign-in routes (/login, /authorize, /session, /logout) and who is asking (authenticate).

The OpenID Connect protocol lives in oidc.py and session bookkeeping (including the
cookies' names) in sessions.py; this module joins them to HTTP: cookies, redirects, CSRF
and cross-site checks, and the error pages a person sees when signing in goes wrong.
"""

import dataclasses
import datetime
import http.cookies
import logging

import bottle

from .. import db, metrics, oidc, sessions, tokens
from ..errors import Forbidden, IServDeskError, Unauthenticated
from .responses import redirect, web_origin

log = logging.getLogger(__name__)

LOGIN_COOKIE = "iservdesk_login"
LOGIN_TTL = datetime.timedelta(minutes=10)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# ID-token claims that userinfo must not overwrite when the two are merged.
PROTECTED_CLAIMS = ("iss", "aud", "azp", "sub", "exp", "iat", "nonce", "auth_time")


@dataclasses.dataclass
class Identity:
    """The signed-in user behind the current request."""

    user: db.User
    session: db.Session
    session_id: str
    via_cookie: bool
    is_admin: bool
    is_teacher: bool


def cookie_header(name, value, *, max_age, secure):
    """A Set-Cookie value: HttpOnly, SameSite=Lax, path /, no Domain; Secure with `secure`.
    (Bottle 0.12 lacks SameSite.) A `__Host-` name needs `secure`: browsers drop it otherwise.
    """
    if name.startswith(sessions.HOST_PREFIX) and not secure:
        raise ValueError("a __Host- cookie must be Secure")
    cookie = http.cookies.SimpleCookie()
    cookie[name] = value
    morsel = cookie[name]
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    morsel["max-age"] = int(max_age)
    if secure:
        morsel["secure"] = True
    return morsel.OutputString()


def session_id_from(request, cookie_name=sessions.COOKIE):
    """(session id, came from the cookie?) from the request's carriers, or (None, False).

    Under /desktop/ only the cookie counts: a link or a page cannot choose whose session a
    desktop is opened with there (a student's `?session_id=` would otherwise make a
    teacher's browser show the student's page on the portal's origin). Elsewhere explicit
    carriers (Bearer, X-Session-ID, ?session_id=) win over the cookie: a script that names
    a session means that one.
    """
    if not desktop_path(request.path):
        authorization = request.headers.get("Authorization", "")
        if authorization[:7].lower() == "bearer ":
            return authorization[7:].strip(), False
        header = request.headers.get("X-Session-ID")
        if header:
            return header.strip(), False
        query = request.query.get("session_id")
        if query:
            return query, False
    cookie = request.get_cookie(cookie_name)
    if cookie:
        return cookie, True
    return None, False


def desktop_path(path):
    """True for /desktop and everything below it, however a client spells it."""
    return path.lstrip("/").lower().startswith("desktop")


def cross_site(request, public_url):
    """Whether `request` comes from a page of another origin than PUBLIC_URL's.

    Fetch Metadata decides when the browser sends it (`same-origin`, and `none` for what
    the person typed or bookmarked, are ours); browsers without it are judged by Origin,
    then Referer. A request with none of these (a script) is not cross-site: the CSRF
    token still guards it.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site.strip().lower() not in ("same-origin", "none")
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source is None:
        return False
    return web_origin(source) != web_origin(public_url)


def safe_return_path(value):
    """A local path to return to after sign-in; anything else becomes /."""
    if (isinstance(value, str) and value.startswith("/") and not value.startswith("//")
            and "\\" not in value and not any(ord(c) < 32 for c in value)):
        return value
    return "/"


class Auth:
    """Who is asking: the Identity behind the current request, and the rule for requests
    that need one. make_app() makes it before any route exists, so every route module can
    use it, whichever adds its routes first."""

    def __init__(self, config, clock):
        self.config = config
        self.clock = clock
        self.policy = sessions.Policy.from_config(config)
        self.secure = config.public_url.startswith("https://")
        self.session_cookie = sessions.cookie_name(self.secure)

    def authenticate(self):
        """The Identity of the current request, or None. Cached per request."""
        environ = bottle.request.environ
        if "iservdesk.identity" not in environ:
            session_id, via_cookie = session_id_from(bottle.request, self.session_cookie)
            identity = None
            if tokens.is_token(session_id):
                environ["iservdesk.identity"] = self._token_identity(session_id)
                return environ["iservdesk.identity"]
            session = sessions.resolve(session_id, self.policy, self.clock()) if session_id else None
            if session is not None:
                identity = Identity(session.user, session, session_id, via_cookie,
                                    self.policy.is_admin(session.user), self.policy.is_teacher(session.user))
            environ["iservdesk.identity"] = identity
        return environ["iservdesk.identity"]

    def _token_identity(self, token):
        """The Identity of an API token (tokens.py), or None. Not from a URL (?session_id=),
        where proxies and logs keep what they see."""
        if bottle.request.query.get("session_id") == token:
            return None
        now = self.clock()
        row = tokens.resolve(token, now)
        if row is None:
            return None
        service = row.user.uuid.startswith(tokens.SERVICE)
        if not service and not self.policy.may_sign_in(row.user):
            return None  # the person may no longer use iservdesk (ALLOWED_GROUPS)
        session = tokens.TokenSession("token:%d" % row.id, row.expires_at, now, row)
        return Identity(row.user, session, token, False, row.admin if service else self.policy.is_admin(row.user),
                        False if service else self.policy.is_teacher(row.user))

    def require_user(self):
        """The Identity, or 401. For cookie-authenticated state changes, also the CSRF token."""
        identity = self.authenticate()
        if identity is None:
            raise Unauthenticated()
        if identity.via_cookie and bottle.request.method not in SAFE_METHODS:
            token = (bottle.request.headers.get("X-CSRF-Token")
                     or bottle.request.forms.get("csrf_token"))
            if not sessions.csrf_valid(self.config.secret_key, identity.session_id, token):
                raise Forbidden("The request lacks a valid CSRF token. Reload the page and try again.",
                                code="csrf_failed")
        return identity


def add_routes(app, context):
    """/login, /authorize, /session, /logout. `context`: a web.Context."""
    config = context.settings
    provider = context.provider
    clock = context.clock
    database = context.database
    viewers = context.viewers
    authenticate, require_user = context.auth.authenticate, context.auth.require_user
    policy = context.auth.policy
    secure = context.auth.secure
    session_cookie = context.auth.session_cookie
    login_cookie = sessions.cookie_name(secure, LOGIN_COOKIE)

    @app.get("/login")
    def login():
        now = clock()
        state, nonce, verifier, browser = (sessions.new_secret() for _ in range(4))
        url = provider.authorization_url(state, nonce, verifier)
        with db.write(database):
            db.Login.delete().where(db.Login.created_at < now - LOGIN_TTL).execute()
            db.Login.create(state_hash=sessions.digest(state), browser_hash=sessions.digest(browser),
                            nonce=nonce, code_verifier=verifier,
                            return_to=safe_return_path(bottle.request.query.get("next")), created_at=now)
        bottle.response.add_header("Set-Cookie", cookie_header(
            login_cookie, browser, max_age=LOGIN_TTL.total_seconds(), secure=secure))
        bottle.response.set_header("Cache-Control", "no-store")
        redirect(config, url, 302)

    def take_login(state):
        """The Login row for `state`, deleted so it can never be used again; or a 400."""
        expired = oidc.LoginError("This sign-in link has expired or was already used. "
                                  "Please sign in again.", code="state_invalid")
        if not state:
            raise oidc.LoginError("The answer from IServ lacks its state. Please sign in again.",
                                  code="state_missing")
        state_hash = sessions.digest(state)
        with db.write(database):
            login_row = db.Login.get_or_none(db.Login.state_hash == state_hash)
            # Deleting inside the write lock makes two racing callbacks see one row at most.
            if login_row is None or db.Login.delete().where(db.Login.state_hash == state_hash).execute() != 1:
                raise expired
        browser = bottle.request.get_cookie(login_cookie)
        if not browser or not sessions.digest(browser) == login_row.browser_hash:
            log.warning("sign-in refused: state used from another browser")
            raise oidc.LoginError("This sign-in was started in another browser or tab. "
                                  "Please sign in again here.", code="state_mismatch")
        if clock() - login_row.created_at > LOGIN_TTL:
            raise expired
        return login_row

    @app.get("/authorize")
    def authorize():
        try:
            return complete_sign_in()
        except IServDeskError as error:
            metrics.SIGNIN_FAILURES.inc(error.code)
            raise

    def complete_sign_in():
        query = bottle.request.query
        error = query.get("error")
        if error:
            if query.get("state"):
                try:
                    take_login(query.get("state"))
                except oidc.LoginError:
                    pass  # the provider's error is the news, not the state
            log.info("sign-in ended by the provider: %s", error[:60])
            if error == "access_denied":
                raise oidc.LoginError("You cancelled signing in at IServ, so you were not signed in.",
                                      status=403, code="access_denied")
            raise oidc.LoginError("IServ refused the sign-in (%s). Please try again; if it keeps "
                                  "happening, tell your IT admin." % error[:60], status=502,
                                  code="provider_error")
        login_row = take_login(query.get("state"))
        code = query.get("code")
        if not code:
            raise oidc.LoginError("The answer from IServ lacks its code. Please sign in again.",
                                  code="code_missing")

        now = clock()
        tokens = provider.exchange(code, login_row.code_verifier)
        claims = provider.verify_id_token(tokens["id_token"], login_row.nonce, now)
        userinfo = provider.userinfo(tokens.get("access_token"), claims["sub"])
        merged = {**claims, **{k: v for k, v in userinfo.items() if k not in PROTECTED_CLAIMS}}
        fields = oidc.identity(merged, config.username_claim)

        previous_id = bottle.request.get_cookie(session_cookie)
        with db.write(database):
            # A sign-in in this browser ends the session it had, whoever's it was (on a shared
            # school computer the last person's session must not outlive the next sign-in),
            # even when the new person is refused below.
            previous = sessions.resolve(previous_id, policy, now, touch=False) if previous_id else None
            if previous is not None:
                sessions.end(previous_id)
                previous_user = previous.user.username
                db.record("logout", actor=previous_user, reason="new sign-in in the same browser")
            user = db.User.get_or_none(db.User.uuid == fields["uuid"]) or db.User(uuid=fields["uuid"],
                                                                                created_at=now)
            for name, value in fields.items():
                setattr(user, name, value)
            db.Group.remember(oidc.group_names(merged.get("groups")), now)
            if not policy.may_sign_in(user):
                if user.id is not None:
                    user.save()  # group changes still count: older sessions lose roles too
                db.record("login.refused", actor=user.username, reason="not in ALLOWED_GROUPS")
                refused = True
            else:
                user.last_login_at = now
                user.save()
                session_id = sessions.create(user, policy, now, id_token=tokens["id_token"])
                db.record("login", actor=user.username, admin=policy.is_admin(user))
                refused = False
        if previous is not None:
            viewers.close(previous.id_hash)
            log.info("%s signed out: a new sign-in in the same browser", previous_user)
        if refused:
            log.warning("sign-in refused for %s: not in ALLOWED_GROUPS", user.username)
            raise Forbidden("Your IServ account is not in a group that may use iservdesk. "
                            "Ask your teacher or IT admin if you think it should be.",
                            code="not_allowed")
        log.info("%s signed in%s", user.username, " (admin)" if policy.is_admin(user) else "")
        metrics.SIGNINS.inc()
        bottle.response.add_header("Set-Cookie", cookie_header(
            session_cookie, session_id, max_age=policy.lifetime.total_seconds(), secure=secure))
        bottle.response.add_header("Set-Cookie", cookie_header(login_cookie, "", max_age=0, secure=secure))
        bottle.response.set_header("Cache-Control", "no-store")
        redirect(config, login_row.return_to, 302)

    @app.get("/session")
    def session_info():
        identity = authenticate()
        if identity is None:
            raise Unauthenticated()
        user = identity.user
        bottle.response.set_header("Cache-Control", "no-store")
        person = {
            "username": user.username,
            "display_name": user.display_name,
            "email": user.email,
            "groups": user.groups,
            "roles": user.roles,
            "is_admin": identity.is_admin,
            "is_teacher": identity.is_teacher,
        }
        expires_at = min(identity.session.expires_at, identity.session.last_seen_at + policy.idle_timeout).isoformat()
        return dict(person, expires_at=expires_at,
                    csrf_token=sessions.csrf_token(config.secret_key, identity.session_id),
                    # The old product's shape, for its clients (never the session id itself).
                    authenticated=True, user=person, session={"expires_at": expires_at})

    @app.post("/logout")
    def logout():
        if bottle.request.get_cookie(session_cookie) and cross_site(bottle.request, config.public_url):
            # SameSite=Lax still sends the cookie with posts from sibling hosts of the same
            # site, and a page that got hold of the CSRF token must not sign anyone out.
            log.warning("refused a cross-site sign-out (Sec-Fetch-Site %s, Origin %s)",
                        bottle.request.headers.get("Sec-Fetch-Site", "-")[:40],
                        bottle.request.headers.get("Origin", "-")[:100])
            raise Forbidden("Signing out works only from iservdesk itself, not from another site.",
                            code="cross_site")
        identity = authenticate()
        end_session_url = None
        if identity is not None:
            require_user()  # the CSRF check for cookie sessions
            with db.write(database):
                sessions.end(identity.session_id)
                db.record("logout", actor=identity.user.username)
                if context.classroom is not None:  # a teacher's demo ends with their sign-out
                    context.classroom.end_demo(identity.user.id, "signed out")
            viewers.close(identity.session.id_hash)
            log.info("%s signed out", identity.user.username)
            if config.stop_on_logout and not db.Session.select().where(db.Session.user == identity.user).exists():
                stopped = context.desktops.stop_all("logout", identity.user)
                if stopped:
                    log.info("STOP_ON_LOGOUT: stopped %d desktops of %s", stopped, identity.user.username)
            end_session_url = provider.end_session_url(identity.session.id_token, config.public_url + "/")
        bottle.response.add_header("Set-Cookie", cookie_header(session_cookie, "", max_age=0, secure=secure))
        bottle.response.set_header("Cache-Control", "no-store")
        if identity is not None and not identity.via_cookie or \
                "application/json" in bottle.request.headers.get("Accept", ""):
            return {"status": "signed_out", "end_session_url": end_session_url}
        redirect(config, end_session_url or "/", 303)
