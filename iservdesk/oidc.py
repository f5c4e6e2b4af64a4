"""OpenID Connect relying party for IServ: discovery, authorization URL, code exchange,
ID-token verification, userinfo, end-session. The only module importing authlib.

Authlib is used for JOSE (keys, signatures) and PKCE; the checks that matter (iss, aud,
exp, iat, nonce, algorithm) are made here explicitly, because the Authlib releases Debian
ships (1.2 and 1.6) predate its fix for a nonce-check bypass and moved their ID-token
API between them. The discovery document must name the configured issuer (mix-up
defence, see issuer_belongs). Claims are normalised from IServ's shapes (groups object,
roles list) and from the plain list-of-strings shapes other providers send; only group
account names (`act`) and role ids count, never display names.

Failures raise LoginError with a status and a message for the person signing in; what
was asked where and what came back is logged here, once. Provider.probe() asks for the
discovery document on behalf of `iservdesk check` and returns a Probe instead, with
that detail in its problem and nothing logged.
"""

import base64
import dataclasses
import hmac
import json
import logging
import re
import threading
import time
import urllib.parse

import requests
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.jose.errors import JoseError
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from .errors import IssuerMismatch, LoginError, ProviderUnreachable, TokenInvalid

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
ISERV_DISCOVERY_PATH = "/iserv/public/.well-known/openid-configuration"
# Asymmetric algorithms only: an HS* token would be "signed" with a public key.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
# Account names become container and path names: IServ's are lower-case ASCII with . and -.
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
CLOCK_SKEW = 120  # seconds of disagreement between our clock and the provider's
METADATA_TTL = 3600


@dataclasses.dataclass(frozen=True)
class Probe:
    """What Provider.probe() found: the issuer of a usable discovery document, or the
    problem (a ProviderUnreachable or IssuerMismatch, whose `detail` says what failed)."""
    issuer: str = None
    problem: LoginError = None

    @property
    def ok(self):
        return self.problem is None


def _unverified_header(token):
    try:
        segment = token.split(".")[0]
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, IndexError):
        raise TokenInvalid() from None


def _names(items, key):
    """Lower-cased names from `items`: strings as they are, objects by `key` only."""
    names = set()
    for item in items:
        if isinstance(item, dict):
            # Display names are chosen freely in IServ (a group "Klasse 7a" may be named
            # "Admins"): an object without its stable key is dropped, never matched by name.
            item = item.get(key)
        if isinstance(item, str) and item.strip():
            names.add(item.strip().lower())
    return sorted(names)


def normalise_groups(value):
    """Group account names (`act`), lower-cased, from IServ's {id: {act, name}} or a
    plain list of names; a group object without `act` is dropped."""
    if isinstance(value, dict):
        return _names(value.values(), "act")
    if isinstance(value, list):
        return _names(value, "act")
    return []


def group_names(value):
    """{act: name} from IServ's {id: {act, name}} groups (or a list of such objects): the
    names people read ("Klasse 7a"); shown only, never matched on."""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    names = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("act"), str) and isinstance(item.get("name"), str):
            act, name = item["act"].strip().lower(), item["name"].strip()
            if act and name:
                names[act] = name[:200]
    return names


def normalise_roles(value):
    """Role ids, lower-cased, from IServ's [{id, displayName}] or a plain list of names;
    a role object without `id` is dropped."""
    if isinstance(value, dict):
        return _names(value.values(), "id")
    if isinstance(value, list):
        return _names(value, "id")
    return []


def _without_trailing_slash(url):
    return url[:-1] if url.endswith("/") else url


def _origin(url):
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def issuer_belongs(issuer, configured, discovery_url):
    """Whether a discovery document fetched from `discovery_url` may name `issuer` when
    OAUTH_ISSUER is `configured` (the defence against mix-up: tokens and endpoints must
    come from the provider the admin chose, not from one that a document points to).

    True when `issuer` is OAUTH_ISSUER itself (up to one trailing slash), or when
    `discovery_url` is where `issuer` publishes its metadata: `issuer` (less one trailing
    slash) + /.well-known/openid-configuration (OpenID Connect Discovery 1.0, 4.1 and
    4.3), or IServ's host-wide <host>/iserv/public/.well-known/openid-configuration on
    the issuer's own origin (scheme, host and port). `discovery_url` is always one that
    OAUTH_ISSUER led to (the issuer, the host or the discovery URL itself).
    """
    if not isinstance(issuer, str) or not issuer:
        return False
    if _without_trailing_slash(issuer) == _without_trailing_slash(configured):
        return True
    if discovery_url == _without_trailing_slash(issuer) + DISCOVERY_PATH:
        return True
    found, named = urllib.parse.urlsplit(discovery_url), urllib.parse.urlsplit(issuer)
    return (found.path == ISERV_DISCOVERY_PATH and not found.query
            and not named.query and not named.fragment  # Discovery 1.0, 3: issuer has neither
            and _origin(issuer) == _origin(discovery_url))


class Provider:
    """One OpenID Connect provider, configured from settings; safe to share between greenlets.

    Network calls (discovery, JWKS, token, userinfo) have the OAUTH_TIMEOUT and raise
    ProviderUnreachable when the provider does not answer usefully.
    """

    def __init__(self, config, http=None):
        self.config = config
        self.http = http or requests.Session()
        self.timeout = config.oauth_timeout
        self._metadata = None
        self._metadata_at = 0.0
        self._keys = None
        self._lock = threading.Lock()

    # -- discovery --

    def _discovery_urls(self):
        issuer = self.config.oauth_issuer
        if issuer.endswith(DISCOVERY_PATH):
            return [issuer]
        issuer = _without_trailing_slash(issuer)  # Discovery 1.0, 4.1
        parts = urllib.parse.urlsplit(issuer)
        iserv = urllib.parse.urlunsplit((parts.scheme, parts.netloc, ISERV_DISCOVERY_PATH, "", ""))
        return [issuer + DISCOVERY_PATH, iserv]

    def _get_json(self, url, what, **kwargs):
        """The JSON of a GET, or ProviderUnreachable whose detail says what went wrong
        (logged by the caller, or reported by probe())."""
        try:
            response = self.http.get(url, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise ProviderUnreachable(detail="identity provider: %s at %s failed: %s"
                                      % (what, url, type(error).__name__)) from None
        if response.status_code != 200:
            raise ProviderUnreachable(detail="identity provider: %s at %s answered %d"
                                      % (what, url, response.status_code))
        try:
            return response.json()
        except ValueError:
            raise ProviderUnreachable(detail="identity provider: %s at %s is not JSON"
                                      % (what, url)) from None

    def _fetch_json(self, url, what, **kwargs):
        """_get_json(), logging why it failed; what it raises then carries only the public
        message (the detail is in the log once)."""
        try:
            return self._get_json(url, what, **kwargs)
        except ProviderUnreachable as error:
            log.warning("%s", error.detail)
        raise ProviderUnreachable()

    def metadata(self):
        """The provider's metadata (discovery plus explicit overrides), cached for an hour.
        Raises ProviderUnreachable (IssuerMismatch when the document names another
        issuer) after logging each failed attempt."""
        if self._metadata and time.monotonic() - self._metadata_at < METADATA_TTL:
            return self._metadata
        metadata, problems = self._discover()
        if metadata is None:
            for problem in problems:
                log.warning("%s", problem.detail)
            raise type(problems[-1])()  # the detail is in the log once
        self._metadata, self._metadata_at = metadata, time.monotonic()
        return metadata

    def probe(self):
        """Ask for the discovery document now, past the cache and without logging, for
        `iservdesk check`: a Probe with the issuer, or with the first problem met."""
        metadata, problems = self._discover()
        if metadata is None:
            return Probe(problem=problems[0])
        return Probe(issuer=metadata["issuer"])

    def _discover(self):
        """(metadata or None, problems): the metadata from the discovery document (asked
        at each of _discovery_urls() in turn) and the explicit overrides; every problem
        met on the way, as a ProviderUnreachable or IssuerMismatch whose detail says what
        happened, the deciding one last. Logs and raises nothing."""
        overrides = {
            "authorization_endpoint": self.config.oauth_authorize_url,
            "token_endpoint": self.config.oauth_token_url,
            "userinfo_endpoint": self.config.oauth_userinfo_url,
            "jwks_uri": self.config.oauth_jwks_uri,
        }
        problems = []
        document = None
        for url in self._discovery_urls():
            try:
                document = self._get_json(url, "discovery")
                break
            except ProviderUnreachable as error:
                problems.append(error)
        if document is None:
            if not all(overrides.values()):
                return None, problems
            document = {"issuer": self.config.oauth_issuer}
        elif not isinstance(document, dict):
            problems.append(ProviderUnreachable(
                detail="identity provider: discovery at %s is not a JSON object" % url))
            return None, problems
        elif not issuer_belongs(document.get("issuer"), self.config.oauth_issuer, url):
            # Not cached: once the admin fixes either side, the next sign-in works.
            problems.append(IssuerMismatch(detail=(
                "identity provider: discovery at %s names issuer %r, not OAUTH_ISSUER %r; sign-in "
                "refused (if that issuer is the school's IServ, set OAUTH_ISSUER to it)"
                % (url, str(document.get("issuer"))[:200], self.config.oauth_issuer))))
            return None, problems
        metadata = dict(document)
        metadata.update({name: value for name, value in overrides.items() if value})
        for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(metadata.get(name), str) or not metadata[name]:
                problems.append(ProviderUnreachable(detail="identity provider: discovery lacks %s" % name))
                return None, problems
        return metadata, problems

    def scopes(self):
        if self.config.oauth_scopes:
            return list(self.config.oauth_scopes)
        supported = self.metadata().get("scopes_supported")
        if not isinstance(supported, list):
            return ["openid", "profile", "email"]
        scopes = ["openid"] + [scope for scope in ("profile", "email", "uuid") if scope in supported]
        for plain, prefixed in (("groups", "iserv:groups"), ("roles", "iserv:roles")):
            if prefixed in supported:
                scopes.append(prefixed)
            elif plain in supported:
                scopes.append(plain)
        return scopes

    # -- the flow --

    def authorization_url(self, state, nonce, code_verifier):
        metadata = self.metadata()
        query = urllib.parse.urlencode({
            "response_type": "code",
            "client_id": self.config.oauth_client_id,
            "redirect_uri": self.config.oauth_redirect_uri,
            "scope": " ".join(self.scopes()),
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(code_verifier),
            "code_challenge_method": "S256",
        })
        endpoint = metadata["authorization_endpoint"]
        return endpoint + ("&" if "?" in endpoint else "?") + query

    def _client_auth_method(self):
        supported = self.metadata().get("token_endpoint_auth_methods_supported")
        if isinstance(supported, list) and "client_secret_basic" not in supported \
                and "client_secret_post" in supported:
            return "client_secret_post"
        return "client_secret_basic"  # the default of RFC 8414 when nothing is said

    def exchange(self, code, code_verifier):
        """Trade the authorization code for tokens; returns the token response dict."""
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": self.config.oauth_redirect_uri, "code_verifier": code_verifier}
        auth = None
        if self._client_auth_method() == "client_secret_post":
            form.update(client_id=self.config.oauth_client_id,
                        client_secret=self.config.oauth_client_secret)
        else:
            # RFC 6749 2.3.1: form-encode id and secret before Basic.
            auth = (urllib.parse.quote(self.config.oauth_client_id, safe=""),
                    urllib.parse.quote(self.config.oauth_client_secret, safe=""))
        url = self.metadata()["token_endpoint"]
        try:
            response = self.http.post(url, data=form, auth=auth, timeout=self.timeout,
                                      headers={"Accept": "application/json"})
        except requests.RequestException as error:
            log.warning("identity provider: token request failed: %s", type(error).__name__)
            raise ProviderUnreachable() from None
        try:
            tokens = response.json()
        except ValueError:
            tokens = {}
        if response.status_code != 200 or not isinstance(tokens, dict) or "id_token" not in tokens:
            # The error code is the provider's vocabulary (invalid_grant, invalid_client), no secret.
            log.warning("identity provider: token endpoint answered %d (%s)", response.status_code,
                        str(tokens.get("error", "no id_token") if isinstance(tokens, dict) else "?")[:80])
            if response.status_code in (400, 401):
                raise LoginError("IServ did not accept this sign-in (it may have taken too long, "
                                 "or the portal's client settings are wrong). Please try again.",
                                 status=502, code="token_refused")
            raise ProviderUnreachable()
        return tokens

    def _key_set(self, refresh=False):
        with self._lock:
            if self._keys is None or refresh:
                self._keys = JsonWebKey.import_key_set(
                    self._fetch_json(self.metadata()["jwks_uri"], "JWKS"))
            return self._keys

    def verify_id_token(self, id_token, nonce, now):
        """Verify signature, iss, aud/azp, exp, iat and nonce; return the claims dict.

        `now` is a timezone-aware datetime. An unknown key id refetches the JWKS once
        (the provider rotated its keys).
        """
        metadata = self.metadata()
        header = _unverified_header(id_token)
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        allowed = [alg for alg in SIGNING_ALGORITHMS if alg in offered]
        if header.get("alg") not in allowed:
            log.warning("ID token refused: algorithm %r not allowed", header.get("alg"))
            raise TokenInvalid()
        keys = self._key_set()
        kid = header.get("kid")
        if kid and kid not in {key.kid for key in keys.keys}:
            keys = self._key_set(refresh=True)
        try:
            claims = dict(JsonWebToken(allowed).decode(id_token, keys))
        except (JoseError, ValueError) as error:
            log.warning("ID token refused: %s", type(error).__name__)
            raise TokenInvalid() from None

        timestamp = now.timestamp()
        client_id = self.config.oauth_client_id
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        problems = []
        if claims.get("iss") != metadata["issuer"]:
            problems.append("iss")
        if not isinstance(audiences, list) or client_id not in audiences:
            problems.append("aud")
        elif len(audiences) > 1 and claims.get("azp") != client_id:
            problems.append("azp")
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < timestamp - CLOCK_SKEW:
            problems.append("exp")
        if not isinstance(claims.get("iat"), (int, float)) or claims["iat"] > timestamp + CLOCK_SKEW:
            problems.append("iat")
        if not isinstance(claims.get("nonce"), str) or not _same(claims["nonce"], nonce):
            problems.append("nonce")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            problems.append("sub")
        if problems:
            log.warning("ID token refused: wrong %s", ", ".join(problems))
            raise TokenInvalid()
        return claims

    def userinfo(self, access_token, subject):
        """Claims from the userinfo endpoint ({} when the provider has none)."""
        url = self.metadata().get("userinfo_endpoint")
        if not url or not access_token:
            return {}
        claims = self._fetch_json(url, "userinfo", headers={"Authorization": "Bearer " + access_token})
        if not isinstance(claims, dict) or claims.get("sub") != subject:
            log.warning("userinfo refused: its sub differs from the ID token's")
            raise TokenInvalid()
        return claims

    def end_session_url(self, id_token, post_logout_redirect_uri):
        """Where to send the browser to end the provider's session, or None."""
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except ProviderUnreachable:  # IssuerMismatch too: never send anyone to that one
            return None
        if not endpoint:
            return None
        query = {"post_logout_redirect_uri": post_logout_redirect_uri,
                 "client_id": self.config.oauth_client_id}
        if id_token:
            query["id_token_hint"] = id_token
        return endpoint + ("&" if "?" in endpoint else "?") + urllib.parse.urlencode(query)


def _same(a, b):
    return hmac.compare_digest(a.encode(), b.encode())


def identity(claims, username_claim):
    """The fields iservdesk keeps from merged claims: uuid, username, names, groups, roles.

    Raises LoginError (403) when the account name is missing or unusable in desktop names.
    """
    uuid = claims.get("uuid") or claims["sub"]
    username = claims.get(username_claim)
    if not isinstance(username, str) or not username.strip():
        raise LoginError("IServ did not tell us your account name (claim %s), so you cannot use "
                         "iservdesk. Please tell your IT admin." % username_claim,
                         status=403, code="no_username")
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise LoginError("Your account name cannot be used for a desktop (only letters, digits, "
                         "dots and hyphens). Please tell your IT admin.", status=403, code="bad_username")
    return {
        "uuid": str(uuid),
        "username": username,
        "display_name": claims.get("name") or username,
        "email": claims.get("email") or "",
        "groups": normalise_groups(claims.get("groups")),
        "roles": normalise_roles(claims.get("roles")),
    }
