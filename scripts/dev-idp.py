#!/usr/bin/python3
"""dev-idp: a development OpenID Connect provider that imitates IServ.

Used by ``make run`` and by the test-suite (started as a subprocess and spoken
to over real HTTP). It is development tooling only: it is never installed by
the Debian package and must never face a network (it binds 127.0.0.1 only,
keeps everything in memory and its demo accounts have trivial passwords).

What it imitates (see the project's shared FACTS.md, "IServ as an OpenID Connect
provider"):

* IServ's endpoint paths (``/iserv/oauth/v2/auth``, ``/iserv/oauth/v2/token``,
  ``/iserv/public/oauth/userinfo``, ``/iserv/public/jwk``,
  ``/iserv/auth/logout``) and discovery at both ``<issuer>/.well-known/...``
  and ``/iserv/public/.well-known/openid-configuration``.
* Scopes ``openid profile email uuid groups roles``; with ``--prefixed-scopes``
  ``iserv:groups``/``iserv:roles`` instead, rejecting the unprefixed names.
* Claims in IServ's shapes: ``groups`` is an object keyed by group id,
  ``roles`` a list of ``{"id", "displayName"}`` objects.
* Authorization code flow (+ refresh token), PKCE S256, RS256 ID tokens, a
  login form with a deny button, no consent screen ("trusted" clients), and a
  single-sign-on session cookie: once logged in, further authorization
  requests from the same browser return straight to the client until
  ``prompt=login`` or the logout endpoint ends the session.

Accounts come from ``--users`` (tests/data/users.json: demo accounts, not real
people), clients from ``--clients`` (tests/data/clients.json) and from
repeatable ``--client ID:SECRET:METHOD:REDIRECT_URI[,REDIRECT_URI...]``.
For convenience, post-logout redirects to any ``http://127.0.0.1:<port>/...``
URI are accepted, besides each client's registered ones.

Negative tests: ``--misbehave MODE`` or, at run time, ``POST /_dev/misbehave``
(``{"mode": "..."}``, ``none`` to stop) and ``POST /_dev/rotate-key``
(``{"keep_old": true|false}``). Modes: see MISBEHAVIOURS below.

Example::

    /usr/bin/python3 scripts/dev-idp.py --port 9400 \\
        --users tests/data/users.json --clients tests/data/clients.json \\
        --issuer-path /iserv
"""

import argparse
import dataclasses
import hmac
import html
import json
import os
import secrets
import signal
import sys
import threading
import time
import traceback
import urllib.parse

# Authlib refuses http:// URIs unless this is set (it only exempts
# "http://localhost:", not 127.0.0.1). We only ever bind 127.0.0.1.
os.environ.setdefault('AUTHLIB_INSECURE_TRANSPORT', '1')

from authlib.common.urls import add_params_to_uri  # noqa: E402
from authlib.jose import JsonWebKey, JsonWebToken, KeySet  # noqa: E402
from authlib.jose.errors import JoseError  # noqa: E402
from authlib.oauth2 import OAuth2Error  # noqa: E402
from authlib.oauth2.rfc6749 import (  # noqa: E402
    AuthorizationServer, ClientMixin, InvalidClientError,
    InvalidRequestError, OAuth2Request, ResourceProtector, TokenMixin, grants)

try:  # Authlib >= 1.3 (trixie's 1.6): requests carry a separate payload
    from authlib.oauth2.rfc6749.requests import (  # noqa: E402
        BasicOAuth2Payload, JsonRequest)
except ImportError:  # Authlib 1.2 (bookworm)
    BasicOAuth2Payload = JsonRequest = None
    from authlib.oauth2.rfc6749 import HttpRequest  # noqa: E402


def oauth2_request(method, url, args, form, headers):
    """An Authlib OAuth2Request in the shape this Authlib release expects."""
    if BasicOAuth2Payload is None:
        return OAuth2Request(method, url, body=form, headers=headers)

    class Request(OAuth2Request):
        @property
        def args(self):
            return args

        @property
        def form(self):
            return form

    request = Request(method, url, headers)
    request.payload = BasicOAuth2Payload({**args, **form})
    return request


def resource_request(method, url, params, headers):
    """The request ResourceProtector.validate_request takes, per Authlib release."""
    if JsonRequest is None:
        return HttpRequest(method, url, params, headers)
    return JsonRequest(method, url, headers)
from authlib.oauth2.rfc6750 import (  # noqa: E402
    BearerTokenGenerator, BearerTokenValidator)
from authlib.oauth2.rfc7636 import CodeChallenge  # noqa: E402
from authlib.oidc.core import OpenIDCode, UserInfo  # noqa: E402
from authlib.oidc.core import AuthorizationCodeMixin  # noqa: E402
from authlib.oidc.core.grants.util import (  # noqa: E402
    generate_id_token, is_openid_scope)
from cheroot import wsgi  # noqa: E402

HOST = '127.0.0.1'

AUTH_PATH = '/iserv/oauth/v2/auth'
TOKEN_PATH = '/iserv/oauth/v2/token'
USERINFO_PATH = '/iserv/public/oauth/userinfo'
JWKS_PATH = '/iserv/public/jwk'
LOGOUT_PATH = '/iserv/auth/logout'
PUBLIC_DISCOVERY_PATH = '/iserv/public/.well-known/openid-configuration'
DEV_MISBEHAVE_PATH = '/_dev/misbehave'
DEV_ROTATE_PATH = '/_dev/rotate-key'

SESSION_COOKIE = 'devidp_session'
AUTH_METHODS = ('client_secret_basic', 'client_secret_post')
CODE_TTL = 120          # seconds an authorization code stays redeemable
ID_TOKEN_TTL = 300      # IServ-like short-lived ID tokens
MAX_BODY = 1 << 20

MISBEHAVIOURS = {
    'none': 'behave',
    'unknown-key': 'sign ID tokens with a key (with a kid) that is not in the JWKS',
    'wrong-iss': 'ID token iss is <issuer>/wrong',
    'wrong-aud': 'ID token aud is another client',
    'expired': 'ID token exp lies in the past',
    'wrong-nonce': 'ID token nonce differs from the one requested',
    'slow': 'token endpoint waits --slow-seconds before answering',
    'no-discovery': 'discovery documents answer 500',
    'other-issuer': 'discovery and ID tokens name another provider '
                    '(https://other-idp.example<issuer-path>) as issuer',
}
# The issuer the "other-issuer" mode publishes: another origin, as in a mix-up attack.
OTHER_ISSUER_BASE = 'https://other-idp.example'

# Only RS256, as announced in discovery (authlib.jose.jwt would accept any alg).
JWT = JsonWebToken(['RS256'])


def log(msg):
    print(f'dev-idp: {msg}', file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Accounts, clients, codes, tokens: plain in-memory objects implementing the
# small model interfaces Authlib's grants call into.

@dataclasses.dataclass
class User:
    uuid: str
    username: str
    password: str
    name: str
    given_name: str
    family_name: str
    email: str
    groups: dict
    roles: list


@dataclasses.dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    token_endpoint_auth_method: str
    redirect_uris: list
    post_logout_redirect_uris: list = dataclasses.field(default_factory=list)

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        # None makes redirect_uri mandatory in authorization requests, as
        # OpenID Connect requires.
        return None

    def get_allowed_scope(self, scope):
        # The server has already rejected anything outside scopes_supported.
        return scope

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris     # exact match only

    def check_client_secret(self, client_secret):
        return hmac.compare_digest(self.client_secret.encode(),
                                   client_secret.encode())

    def check_endpoint_auth_method(self, method, endpoint):
        if endpoint == 'token':
            return method == self.token_endpoint_auth_method
        return True

    def check_response_type(self, response_type):
        return response_type == 'code'

    def check_grant_type(self, grant_type):
        return grant_type in ('authorization_code', 'refresh_token')


@dataclasses.dataclass
class LoginSession:
    """The end user's single-sign-on session at the provider."""
    sid: str
    user: User
    auth_time: int


@dataclasses.dataclass
class AuthCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user_uuid: str
    nonce: str
    auth_time: int
    code_challenge: str
    code_challenge_method: str
    expires_at: float

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time


@dataclasses.dataclass
class Token(TokenMixin):
    access_token: str
    refresh_token: str
    client_id: str
    scope: str
    user_uuid: str
    issued_at: float
    expires_in: int
    revoked: bool = False

    def check_client(self, client):
        return self.client_id == client.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def is_expired(self):
        return self.issued_at + self.expires_in < time.time()

    def is_revoked(self):
        return self.revoked


def new_signing_key():
    key = JsonWebKey.generate_key('RSA', 2048, is_private=True)
    key.options['kid'] = key.thumbprint()    # RFC 7638 thumbprint as kid
    return key


class State:
    """Everything the provider knows; guarded by one lock because cheroot
    serves requests from a thread pool."""

    def __init__(self, users, clients, args):
        self.lock = threading.RLock()
        self.users = {u.username.lower(): u for u in users}
        self.users_by_uuid = {u.uuid: u for u in users}
        self.clients = clients
        self.prefixed_scopes = args.prefixed_scopes
        self.access_token_ttl = args.access_token_ttl
        self.slow_seconds = args.slow_seconds
        self.issuer_path = args.issuer_path
        self.base_url = None            # known once the socket is bound
        self.mode = args.misbehave
        self.codes = {}
        self.used_nonces = set()
        self.tokens = {}                # access token -> Token
        self.refresh_tokens = {}        # refresh token -> Token
        self.sessions = {}              # sid -> LoginSession
        self.signing_key = new_signing_key()
        self.published_keys = [self.signing_key]
        self.all_keys = [self.signing_key]   # for id_token_hint at logout
        self._rogue_key = None
        self.shutdown = threading.Event()

    @property
    def issuer(self):
        return self.base_url + self.issuer_path

    @property
    def published_issuer(self):
        """The issuer discovery and ID tokens name: another one when misbehaving."""
        if self.mode == 'other-issuer':
            return OTHER_ISSUER_BASE + self.issuer_path
        return self.issuer

    @property
    def scopes_supported(self):
        extra = ['iserv:groups', 'iserv:roles'] if self.prefixed_scopes \
            else ['groups', 'roles']
        return ['openid', 'profile', 'email', 'uuid'] + extra

    def rogue_key(self):
        # Generated on first use: start-up stays fast.
        if self._rogue_key is None:
            self._rogue_key = new_signing_key()
        return self._rogue_key

    def rotate_key(self, keep_old):
        key = new_signing_key()
        self.signing_key = key
        self.published_keys = [key] + (self.published_keys if keep_old else [])
        self.all_keys.append(key)
        return key

    def jwks(self):
        return {'keys': [k.as_dict(is_private=False, use='sig', alg='RS256')
                         for k in self.published_keys]}


def user_claims(user, scope):
    """Claims for the ID token and userinfo, chosen by granted scope the way
    IServ does (groups/roles in IServ's own shapes)."""
    scopes = set(scope.split()) if scope else set()
    info = UserInfo(sub=user.uuid)
    if 'uuid' in scopes:
        info['uuid'] = user.uuid
    if 'profile' in scopes:
        info.update(preferred_username=user.username, name=user.name,
                    given_name=user.given_name,
                    family_name=user.family_name)
    if 'email' in scopes:
        info['email'] = user.email
    if scopes & {'groups', 'iserv:groups'}:
        info['groups'] = user.groups
    if scopes & {'roles', 'iserv:roles'}:
        info['roles'] = user.roles
    return info


# --------------------------------------------------------------------------
# Authlib server side: grants, OIDC extension, PKCE, and the WSGI adapter.

class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def save_authorization_code(self, code, request):
        session = request.user        # the LoginSession given as grant_user
        data = request.data
        state = self.server.state
        nonce = data.get('nonce')
        state.codes[code] = AuthCode(
            code=code, client_id=request.client.client_id,
            redirect_uri=request.redirect_uri, scope=request.scope or '',
            user_uuid=session.user.uuid, nonce=nonce,
            auth_time=session.auth_time,
            code_challenge=data.get('code_challenge'),
            code_challenge_method=data.get('code_challenge_method'),
            expires_at=time.time() + CODE_TTL)
        if nonce:
            state.used_nonces.add((request.client.client_id, nonce))

    def query_authorization_code(self, code, client):
        item = self.server.state.codes.get(code)
        if item and item.client_id == client.client_id \
                and item.expires_at > time.time():
            return item
        return None

    def delete_authorization_code(self, authorization_code):
        self.server.state.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return self.server.state.users_by_uuid.get(authorization_code.user_uuid)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    # Authlib's default here is client_secret_basic only: list both.
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)
    # Rotate refresh tokens: a relying party must store the new one.
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        token = self.server.state.refresh_tokens.get(refresh_token)
        if token and not token.revoked:
            return token
        return None

    def authenticate_user(self, credential):
        return self.server.state.users_by_uuid.get(credential.user_uuid)

    def revoke_old_credential(self, credential):
        credential.revoked = True
        self.server.state.refresh_tokens.pop(credential.refresh_token, None)


class S256CodeChallenge(CodeChallenge):
    """PKCE, S256 only. Authlib also accepts "plain" and treats a missing
    code_challenge_method as "plain"; IServ-like discovery announces S256."""
    SUPPORTED_CODE_CHALLENGE_METHOD = ['S256']

    def validate_code_challenge(self, grant, *args):
        # Authlib 1.6 passes the redirect URI too; 1.2 does not.
        payload = getattr(grant.request, 'payload', None)
        data = payload.data if payload is not None else grant.request.data
        if data.get('code_challenge') and \
                data.get('code_challenge_method') != 'S256':
            raise InvalidRequestError(
                'code_challenge_method must be S256',
                state=grant.request.state)
        super().validate_code_challenge(grant, *args)


class IServOpenIDCode(OpenIDCode):
    def __init__(self, state):
        super().__init__(require_nonce=False)
        self.state = state

    def exists_nonce(self, nonce, request):
        # A nonce already used for this client is a replay.
        return (request.client_id, nonce) in self.state.used_nonces

    def generate_user_info(self, user, scope):
        return user_claims(user, scope)

    def get_jwt_config(self, grant):
        return {'key': self.state.signing_key, 'alg': 'RS256',
                'iss': self.state.published_issuer, 'exp': ID_TOKEN_TTL}

    def process_token(self, grant, token):
        # Same as Authlib's OpenIDToken.process_token, but every ID token
        # passes through here so --misbehave can bend it. Authlib 1.6 hands
        # in the (status, token, headers) response, 1.2 the token.
        if isinstance(token, tuple):
            token = token[1]
        if not is_openid_scope(token.get('scope')):
            return token
        request = grant.request
        code = getattr(request, 'authorization_code', None) or request.credential
        config = self.get_jwt_config(grant)
        config['aud'] = self.get_audiences(request)
        config['nonce'] = code.get_nonce()
        config['auth_time'] = code.get_auth_time()

        mode = self.state.mode
        if mode == 'unknown-key':
            config['key'] = self.state.rogue_key()
        elif mode == 'wrong-iss':
            config['iss'] = self.state.issuer + '/wrong'
        elif mode == 'wrong-aud':
            config['aud'] = ['another-client']
        elif mode == 'expired':
            config['exp'] = -ID_TOKEN_TTL
        elif mode == 'wrong-nonce':
            config['nonce'] = 'wrong-' + (config['nonce'] or 'nonce')

        user_info = self.generate_user_info(request.user, token['scope'])
        token['id_token'] = generate_id_token(token, user_info, **config)
        return token


class AccessTokenValidator(BearerTokenValidator):
    def __init__(self, state):
        super().__init__()
        self.state = state

    def authenticate_token(self, token_string):
        return self.state.tokens.get(token_string)


class Request:
    """The parts of a WSGI request this provider looks at."""

    def __init__(self, environ):
        self.method = environ['REQUEST_METHOD']
        self.path = environ.get('PATH_INFO') or '/'
        self.query = environ.get('QUERY_STRING', '')
        self.args = dict(urllib.parse.parse_qsl(self.query,
                                                keep_blank_values=True))
        self.headers = {
            key[5:].replace('_', '-').title(): value
            for key, value in environ.items() if key.startswith('HTTP_')}
        if environ.get('CONTENT_TYPE'):
            self.headers['Content-Type'] = environ['CONTENT_TYPE']
        length = int(environ.get('CONTENT_LENGTH') or 0)
        self.body = environ['wsgi.input'].read(min(length, MAX_BODY)) \
            if length else b''
        self.form, self.json = {}, None
        ctype = environ.get('CONTENT_TYPE', '').split(';')[0].strip()
        if ctype == 'application/x-www-form-urlencoded':
            self.form = dict(urllib.parse.parse_qsl(
                self.body.decode('utf-8', 'replace'), keep_blank_values=True))
        elif ctype == 'application/json' and self.body:
            try:
                self.json = json.loads(self.body)
            except ValueError:
                self.json = None
        self.cookies = {}
        for part in environ.get('HTTP_COOKIE', '').split(';'):
            name, _, value = part.strip().partition('=')
            if name:
                self.cookies[name] = value

    @property
    def params(self):
        """Query and body parameters together (body wins), like OAuth."""
        return {**self.args, **self.form, **(self.json if isinstance(
            self.json, dict) else {})}


@dataclasses.dataclass
class Response:
    status: int
    body: bytes = b''
    headers: list = dataclasses.field(default_factory=list)


def json_response(status, obj, headers=None):
    return Response(status, json.dumps(obj).encode(),
                    [('Content-Type', 'application/json')] + (headers or []))


def html_response(status, text, headers=None):
    return Response(status, text.encode(),
                    [('Content-Type', 'text/html; charset=utf-8')]
                    + (headers or []))


def redirect(location, headers=None):
    return Response(302, b'', [('Location', location)] + (headers or []))


class DevAuthorizationServer(AuthorizationServer):
    """Authlib's AuthorizationServer wired to our Request/Response types
    (Authlib ships integrations for Flask/Django only)."""

    def __init__(self, state):
        super().__init__(scopes_supported=state.scopes_supported)
        self.state = state
        self.register_token_generator('default', BearerTokenGenerator(
            access_token_generator=lambda **kw: secrets.token_urlsafe(32),
            refresh_token_generator=lambda **kw: secrets.token_urlsafe(32),
            expires_generator=state.access_token_ttl))
        self.register_grant(AuthorizationCodeGrant,
                            [IServOpenIDCode(state), S256CodeChallenge()])
        self.register_grant(RefreshTokenGrant)

    def query_client(self, client_id):
        return self.state.clients.get(client_id)

    def save_token(self, token, request):
        item = Token(access_token=token['access_token'],
                     refresh_token=token.get('refresh_token'),
                     client_id=request.client.client_id,
                     scope=token.get('scope', ''),
                     user_uuid=request.user.uuid, issued_at=time.time(),
                     expires_in=token['expires_in'])
        self.state.tokens[item.access_token] = item
        if item.refresh_token:
            self.state.refresh_tokens[item.refresh_token] = item

    def authenticate_client(self, request, methods, endpoint='token'):
        # Authlib answers an unknown client_id sent in the body with 400;
        # we answer every client authentication failure with 401.
        try:
            return super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as error:
            error.status_code = 401
            raise

    def send_signal(self, name, *args, **kwargs):
        pass        # Authlib calls this unconditionally; we need no signals

    def create_oauth2_request(self, request):
        url = self.state.base_url + request.path
        if request.query:
            url += '?' + request.query
        return oauth2_request(request.method, url, request.args, request.form,
                              request.headers)

    def handle_response(self, status, body, headers):
        if isinstance(body, dict):
            body = json.dumps(body)
        return Response(status, (body or '').encode(), list(headers))


# --------------------------------------------------------------------------
# HTTP endpoints.

LOGIN_PAGE = """<!DOCTYPE html>
<html lang="de"><head><meta charset="utf-8">
<title>IServ-Anmeldung (dev-idp)</title>
<style>body{{font-family:sans-serif;max-width:26em;margin:4em auto}}
label,input{{display:block;margin:.3em 0}}.error{{color:#b00}}</style>
</head><body>
<h1>IServ-Anmeldung</h1>
<p>Development identity provider: demo accounts are in tests/data/users.json.
<br>Anmeldung für <b>{client_id}</b>.</p>
{message}
<form id="login-form" method="post" action="{action}">
{hidden}
<label for="username">Account</label>
<input id="username" name="username" value="{username}" autocomplete="username" autofocus>
<label for="password">Passwort</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<button type="submit" name="action" value="login">Anmelden</button>
<button type="submit" name="action" value="deny" formnovalidate>Ablehnen</button>
</form>
</body></html>
"""

LOGGED_OUT_PAGE = """<!DOCTYPE html>
<html lang="de"><head><meta charset="utf-8"><title>Abgemeldet (dev-idp)</title></head>
<body><h1>Sie wurden abgemeldet.</h1><p>You have been logged out.</p></body></html>
"""

# Parameters of the original authorization request that the login form
# carries along in hidden fields.
FORM_EXCLUDE = {'username', 'password', 'action'}


class App:
    def __init__(self, state):
        self.state = state
        self.server = DevAuthorizationServer(state)
        self.protector = ResourceProtector()
        self.protector.register_token_validator(AccessTokenValidator(state))

    # -- WSGI entry point: one log line per request, no query strings (they
    #    carry codes, states and nonces) and no bodies.
    def __call__(self, environ, start_response):
        started = time.monotonic()
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Exception as exc:
            # Keep serving. Log the stack but not the exception's message,
            # which could quote a code or token.
            log(f'error in {request.method} {request.path}: '
                f'{type(exc).__name__}\n'
                + ''.join(traceback.format_tb(exc.__traceback__)))
            response = json_response(500, {'error': 'server_error'})
        ms = (time.monotonic() - started) * 1000
        mode = '' if self.state.mode == 'none' else f' [{self.state.mode}]'
        log(f'{environ.get("REMOTE_ADDR", "-")} {request.method} '
            f'{request.path} {response.status} {ms:.0f}ms{mode}')
        reason = {200: 'OK', 302: 'Found', 400: 'Bad Request',
                  401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
                  405: 'Method Not Allowed', 500: 'Internal Server Error'}
        start_response(f'{response.status} {reason.get(response.status, "")}',
                       response.headers
                       + [('Content-Length', str(len(response.body)))])
        return [response.body]

    def dispatch(self, request):
        path = request.path
        routes = {
            AUTH_PATH: self.authorize,
            TOKEN_PATH: self.token,
            USERINFO_PATH: self.userinfo,
            JWKS_PATH: self.jwks,
            LOGOUT_PATH: self.logout,
            PUBLIC_DISCOVERY_PATH: self.discovery,
            self.state.issuer_path + '/.well-known/openid-configuration':
                self.discovery,
            DEV_MISBEHAVE_PATH: self.dev_misbehave,
            DEV_ROTATE_PATH: self.dev_rotate_key,
        }
        handler = routes.get(path)
        if handler is None:
            return json_response(404, {'error': 'not_found'})
        return handler(request)

    # -- discovery and keys

    def discovery(self, request):
        if self.state.mode == 'no-discovery':
            return json_response(500, {'error': 'server_error'})
        base = self.state.base_url
        methods = sorted({c.token_endpoint_auth_method
                          for c in self.state.clients.values()})
        return json_response(200, {
            'issuer': self.state.published_issuer,
            'authorization_endpoint': base + AUTH_PATH,
            'token_endpoint': base + TOKEN_PATH,
            'userinfo_endpoint': base + USERINFO_PATH,
            'jwks_uri': base + JWKS_PATH,
            'end_session_endpoint': base + LOGOUT_PATH,
            'scopes_supported': self.state.scopes_supported,
            'response_types_supported': ['code'],
            'response_modes_supported': ['query'],
            'grant_types_supported': ['authorization_code', 'refresh_token'],
            'subject_types_supported': ['public'],
            'id_token_signing_alg_values_supported': ['RS256'],
            'code_challenge_methods_supported': ['S256'],
            'token_endpoint_auth_methods_supported': methods,
            'claims_supported': [
                'iss', 'sub', 'aud', 'exp', 'iat', 'auth_time', 'nonce',
                'uuid', 'preferred_username', 'name', 'given_name',
                'family_name', 'email', 'groups', 'roles'],
        })

    def jwks(self, request):
        with self.state.lock:
            return json_response(200, self.state.jwks())

    # -- authorization endpoint: validate, log in (or reuse the SSO
    #    session), then hand the decision to Authlib.

    def current_session(self, request):
        sid = request.cookies.get(SESSION_COOKIE)
        return self.state.sessions.get(sid) if sid else None

    def authorize(self, request):
        if request.method not in ('GET', 'POST'):
            return json_response(405, {'error': 'invalid_request'})
        with self.state.lock:
            session = self.current_session(request)
            try:
                # Validates client, exact redirect_uri, scopes, PKCE, nonce
                # and prompt. Errors carry redirect_uri only once the
                # redirect_uri is known to be registered.
                self.server.get_consent_grant(request, end_user=session)
            except OAuth2Error as error:
                # Authlib 1.2 forgets the state on prompt errors
                # (login_required, ...); every redirect must carry it.
                if error.redirect_uri and not error.state:
                    error.state = request.params.get('state')
                return self.server.handle_error_response(None, error)

            action = request.form.get('action')
            if action == 'deny':
                return self.server.create_authorization_response(
                    request, grant_user=None)     # -> error=access_denied
            if request.method == 'POST' and 'username' in request.form:
                return self.login(request)
            prompts = request.params.get('prompt', '').split()
            if session and 'login' not in prompts:
                return self.server.create_authorization_response(
                    request, grant_user=session)
            return self.login_form(request)

    def login(self, request):
        username = request.form.get('username', '').strip()
        password = request.form.get('password', '')
        user = self.state.users.get(username.lower())
        if user is None or not hmac.compare_digest(
                user.password.encode(), password.encode()):
            return self.login_form(
                request, 'Account oder Passwort falsch. '
                         '(Wrong account name or password.)')
        session = LoginSession(sid=secrets.token_urlsafe(24), user=user,
                               auth_time=int(time.time()))
        self.state.sessions[session.sid] = session
        response = self.server.create_authorization_response(
            request, grant_user=session)
        response.headers.append((
            'Set-Cookie', f'{SESSION_COOKIE}={session.sid}; Path=/; '
                          'HttpOnly; SameSite=Lax'))
        return response

    def login_form(self, request, message=None):
        params = {k: v for k, v in request.params.items()
                  if k not in FORM_EXCLUDE}
        hidden = '\n'.join(
            f'<input type="hidden" name="{html.escape(k)}" '
            f'value="{html.escape(v)}">' for k, v in params.items())
        page = LOGIN_PAGE.format(
            client_id=html.escape(params.get('client_id', '')),
            action=AUTH_PATH, hidden=hidden,
            username=html.escape(request.form.get(
                'username', params.get('login_hint', ''))),
            message=(f'<p class="error" id="login-error">'
                     f'{html.escape(message)}</p>' if message else ''))
        return html_response(200, page, [('Cache-Control', 'no-store')])

    # -- token and userinfo

    def token(self, request):
        if self.state.mode == 'slow':
            # Interruptible, so SIGTERM does not wait for it.
            self.state.shutdown.wait(self.state.slow_seconds)
        with self.state.lock:
            return self.server.create_token_response(request)

    def userinfo(self, request):
        with self.state.lock:
            http_request = resource_request(request.method, request.path,
                                            request.params, request.headers)
            try:
                token = self.protector.validate_request(['openid'],
                                                        http_request)
            except OAuth2Error as error:
                return self.server.handle_response(*error())
            user = self.state.users_by_uuid[token.user_uuid]
            return json_response(200, dict(user_claims(user, token.scope)),
                                 [('Cache-Control', 'no-store')])

    # -- end session (RP-initiated logout)

    def logout(self, request):
        params = request.params
        with self.state.lock:
            client = self.state.clients.get(params.get('client_id', ''))
            hint = params.get('id_token_hint')
            if hint:
                try:
                    # Expired hints are fine (that is what they usually are);
                    # the signature must be ours.
                    claims = JWT.decode(hint, KeySet(self.state.all_keys))
                except (JoseError, ValueError, TypeError):
                    return json_response(400, {
                        'error': 'invalid_request',
                        'error_description': 'invalid id_token_hint'})
                aud = claims.get('aud')
                aud = aud[0] if isinstance(aud, list) and aud else aud
                client = client or self.state.clients.get(aud)

            sid = request.cookies.get(SESSION_COOKIE)
            self.state.sessions.pop(sid, None)
            clear = [('Set-Cookie', f'{SESSION_COOKIE}=; Path=/; Max-Age=0; '
                                    'HttpOnly; SameSite=Lax')]

            target = params.get('post_logout_redirect_uri')
            if not target:
                return html_response(200, LOGGED_OUT_PAGE, clear)
            registered = client and target in client.post_logout_redirect_uris
            if not (registered or is_local_dev_uri(target)):
                return json_response(400, {
                    'error': 'invalid_request',
                    'error_description': 'post_logout_redirect_uri not allowed'})
            if params.get('state'):
                target = add_params_to_uri(target, [('state', params['state'])])
            return redirect(target, clear)

    # -- test controls

    def dev_misbehave(self, request):
        if request.method == 'GET':
            return json_response(200, {'mode': self.state.mode})
        if request.method != 'POST':
            return json_response(405, {'error': 'invalid_request'})
        mode = request.params.get('mode', '')
        if mode not in MISBEHAVIOURS:
            return json_response(400, {'error': 'invalid_request',
                                       'modes': sorted(MISBEHAVIOURS)})
        self.state.mode = mode
        log(f'misbehave mode now {mode}')
        return json_response(200, {'mode': mode})

    def dev_rotate_key(self, request):
        if request.method != 'POST':
            return json_response(405, {'error': 'invalid_request'})
        keep_old = request.params.get('keep_old', True)
        if isinstance(keep_old, str):
            keep_old = keep_old.lower() in ('1', 'true', 'yes', 'on')
        with self.state.lock:
            key = self.state.rotate_key(bool(keep_old))
            log(f'signing key rotated to kid {key.kid} (keep_old={keep_old})')
            return json_response(200, {
                'kid': key.kid,
                'jwks_kids': [k.kid for k in self.state.published_keys]})


def is_local_dev_uri(uri):
    """Any http://127.0.0.1:<port>/ URI: post-logout targets of local dev
    and test instances on random ports."""
    parts = urllib.parse.urlsplit(uri)
    return parts.scheme == 'http' and parts.hostname == HOST


# --------------------------------------------------------------------------
# Configuration and start-up.

def load_users(path):
    with open(path, encoding='utf-8') as f:
        data = json.load(f)
    users = []
    for item in data['users'] if isinstance(data, dict) else data:
        given, _, family = item['name'].partition(' ')
        users.append(User(
            uuid=item['uuid'], username=item['username'],
            password=item['password'], name=item['name'],
            given_name=item.get('given_name', given),
            family_name=item.get('family_name', family),
            email=item['email'], groups=item.get('groups', {}),
            roles=item.get('roles', [])))
    return users


def make_client(client_id, secret, method, redirect_uris, logout_uris=()):
    if method not in AUTH_METHODS:
        raise ValueError(f'client {client_id}: token endpoint auth method '
                         f'must be one of {", ".join(AUTH_METHODS)}')
    return Client(client_id, secret, method, list(redirect_uris),
                  list(logout_uris))


def load_clients(path):
    with open(path, encoding='utf-8') as f:
        data = json.load(f)
    return [make_client(c['client_id'], c['client_secret'],
                        c['token_endpoint_auth_method'], c['redirect_uris'],
                        c.get('post_logout_redirect_uris', ()))
            for c in (data['clients'] if isinstance(data, dict) else data)]


def parse_client_arg(value):
    # Split at the first three colons only: redirect URIs contain colons.
    parts = value.split(':', 3)
    if len(parts) != 4 or not all(parts):
        raise argparse.ArgumentTypeError(
            'expected ID:SECRET:METHOD:REDIRECT_URI[,REDIRECT_URI...]')
    try:
        return make_client(parts[0], parts[1], parts[2], parts[3].split(','))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description='Development OpenID Connect provider imitating IServ '
                    '(never installed by the Debian package).')
    parser.add_argument('--port', type=int, default=9400,
                        help='port on 127.0.0.1 (0: pick a free one)')
    parser.add_argument('--users', required=True, help='accounts JSON file')
    parser.add_argument('--clients', help='clients JSON file')
    parser.add_argument('--client', action='append', default=[],
                        type=parse_client_arg, metavar='ID:SECRET:METHOD:URIS',
                        help='add a client; METHOD is client_secret_basic or '
                             'client_secret_post, URIS comma-separated '
                             '(repeatable)')
    parser.add_argument('--issuer-path', default='',
                        help='path appended to http://127.0.0.1:PORT to form '
                             'the issuer, e.g. /iserv')
    parser.add_argument('--prefixed-scopes', action='store_true',
                        help='offer iserv:groups/iserv:roles and reject '
                             'groups/roles, like newer IServ')
    parser.add_argument('--misbehave', default='none',
                        choices=sorted(MISBEHAVIOURS),
                        help='misbehaviour for negative tests')
    parser.add_argument('--slow-seconds', type=float, default=15.0,
                        help='delay of the token endpoint in "slow" mode')
    parser.add_argument('--access-token-ttl', type=int, default=3600,
                        help='access token lifetime in seconds')
    args = parser.parse_args(argv)
    if args.access_token_ttl < 1:
        parser.error('--access-token-ttl must be positive')
    path = args.issuer_path.rstrip('/')
    if path and not path.startswith('/'):
        parser.error('--issuer-path must start with /')
    args.issuer_path = path
    return args


def main(argv=None):
    args = parse_args(argv)
    clients = {}
    for client in (load_clients(args.clients) if args.clients else []) \
            + args.client:
        clients[client.client_id] = client        # command line wins
    if not clients:
        sys.exit('dev-idp: no clients configured (--clients or --client)')

    state = State(load_users(args.users), clients, args)
    app = App(state)
    server = wsgi.Server((HOST, args.port), app, numthreads=16,
                         server_name='dev-idp', shutdown_timeout=1)
    try:
        server.prepare()              # binds; resolves port 0
    except OSError as error:
        sys.exit(f'dev-idp: cannot listen on {HOST}:{args.port}: {error}')
    state.base_url = f'http://{HOST}:{server.bind_addr[1]}'

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    log(f'issuer {state.issuer}, {len(state.users)} accounts, clients '
        f'{", ".join(sorted(clients))}, misbehave={state.mode}')
    print(f'dev-idp listening on {state.base_url}', flush=True)
    try:
        server.serve()
    except SystemExit:
        pass
    finally:
        state.shutdown.set()
        # Worker threads may sit in keep-alive reads of idle clients; give them a
        # moment, then leave anyway: tests and `make run` expect a prompt exit.
        stopper = threading.Thread(target=server.stop, daemon=True)
        stopper.start()
        stopper.join(3)
        log('stopped')
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == '__main__':
    main()
