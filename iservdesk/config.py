"""Settings: every option declared once in SCHEMA, loaded from the env file and the environment.

This module owns parsing and validation. It does not know what the settings are used
for; `.env.example` and the README's settings table are generated from SCHEMA
(`python3 -m iservdesk settings --markdown`) and a test keeps them in step.
"""

import datetime
import io
import ipaddress
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Callable, Optional

from dotenv.parser import parse_stream

DEFAULT_PATH = "/etc/iservdesk/iservdesk.env"


class ConfigError(Exception):
    """A setting is missing, unknown or malformed. str() is one line, never a secret."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Optional[str]  # None: required
    parse: Callable[[str], object]
    help: str
    secret: bool = False
    example: Optional[str] = None  # value shown in .env.example instead of the default


# -- parsers: each takes the raw string and raises ValueError with a short reason --

def parse_str(value):
    return value


def parse_int(value):
    try:
        return int(value)
    except ValueError:
        raise ValueError("expected a whole number") from None


def parse_port(value):
    port = parse_int(value)
    if not 1 <= port <= 65535:
        raise ValueError("expected a port between 1 and 65535")
    return port


def parse_port_range(value):
    low, sep, high = value.partition("-")
    if not sep:
        raise ValueError("expected LOW-HIGH, e.g. 7000-8000")
    try:
        low, high = parse_port(low.strip()), parse_port(high.strip())
    except ValueError:
        raise ValueError("expected LOW-HIGH with ports between 1 and 65535") from None
    if low > high:
        raise ValueError("the first port must not be larger than the second")
    return range(low, high + 1)


def parse_listen(value):
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8080")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError("expected an IP address or localhost before the port") from None
    return host, parse_port(port)


def parse_url(value):
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not contain ? or #")
    return value.rstrip("/")


def parse_optional_url(value):
    return parse_url(value) if value else ""


def parse_host(value):
    if not value:
        return ""
    if "/" in value or " " in value:
        raise ValueError("expected a host name such as desk.school.example, without scheme or path")
    return value


def parse_database_uri(value):
    prefix = "sqlite:///"
    if not value.startswith(prefix) or len(value) == len(prefix):
        raise ValueError("expected sqlite:////absolute/path.db (only SQLite is supported)")
    return value[len(prefix):]


# Settings of the old product (iserv-remote-desktop, Flask) that mean nothing here: a
# settings file written for it loads, with one warning line each (Config.notes). Any other
# unknown name stays an error: a typo must not pass.
SEED_UNUSED = {
    "DEBUG": "iservdesk has no debug mode; LOG_LEVEL=DEBUG logs more",
    "FLASK_ENV": "iservdesk is not a Flask application",
    "SQLALCHEMY_TRACK_MODIFICATIONS": "iservdesk keeps its state in SQLite without SQLAlchemy",
    "FRONTEND_URL": "the portal serves its pages itself at PUBLIC_URL",
    "DOCKER_HOST_PROTOCOL": "PUBLIC_URL says http or https",
}
SERVER_DATABASES = ("postgresql", "postgres", "mysql", "mariadb")


def parse_secret_key(value):
    if len(value) < 32:
        raise ValueError("must be at least 32 characters (e.g. from `openssl rand -hex 32`)")
    return value


def parse_log_level(value):
    level = value.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level


def parse_docker_url(value):
    if not value.startswith(("unix://", "tcp://", "http://", "https://")):
        raise ValueError("expected unix:///path/to/docker.sock or tcp://host:port")
    return value


def parse_issuer(value):
    url = parse_url(value)
    host = urllib.parse.urlsplit(url).hostname
    if url.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("must be https:// (plain http is accepted for 127.0.0.1 only)")
    return url


def parse_optional_issuer(value):
    return parse_issuer(value) if value else ""


def parse_list(value):
    """Comma-separated names, lower-cased (IServ group and role names match case-insensitively)."""
    return tuple(item.strip().lower() for item in value.split(",") if item.strip())


def parse_scopes(value):
    scopes = tuple(value.split())
    if scopes and "openid" not in scopes:
        raise ValueError("must include openid")
    return scopes


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_FORMS = "90s, 3m, 4h, 7d or plain seconds"
# Ten years: far beyond any sensible timeout, and `now - limit` stays a valid datetime
# (an unbounded number overflowed timedelta with a traceback instead of this one line).
DURATION_LIMIT_DAYS = 3650
DURATION_HELP = "A duration: %s; at most %dd." % (DURATION_FORMS, DURATION_LIMIT_DAYS)


def parse_duration(value):
    """A whole number with s, m, h or d, or without a unit in seconds -> timedelta above zero.

    Every duration setting goes through here, so they all accept the same forms.
    ASCII digits only: int() alone would also take "+5", "1_0" and other scripts' digits.
    """
    match = re.fullmatch(r"([0-9]+)([smhd]?)", value)
    if not match:
        raise ValueError("expected " + DURATION_FORMS)
    seconds = int(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    if seconds > DURATION_LIMIT_DAYS * DURATION_UNITS["d"]:
        raise ValueError("must be at most %dd" % DURATION_LIMIT_DAYS)
    return datetime.timedelta(seconds=seconds)


def parse_optional_duration(value):
    """parse_duration, or None for "0" or "off" (the feature is off)."""
    if value.strip().lower() in ("0", "off"):
        return None
    return parse_duration(value)


def parse_duration_seconds(value):
    """parse_duration as whole seconds, for the timeouts handed to sockets and HTTP clients."""
    return int(parse_duration(value).total_seconds())


SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


def parse_size(value):
    """A whole number of bytes, or with k, m, g or t (binary: 1g is 1024 MiB) -> int > 0."""
    match = re.fullmatch(r"([0-9]+)([kmgt]?)(?:i?b)?", value.strip().lower())
    if not match:
        raise ValueError("expected a size such as 500m, 1g or 5g (bytes, k, m, g, t)")
    size = int(match.group(1)) * SIZE_UNITS[match.group(2)]
    if size <= 0:
        raise ValueError("must be larger than zero")
    return size


def parse_prefix(value):
    if not re.match(r"^[a-z0-9][a-z0-9_.-]{0,30}$", value):
        raise ValueError("use 1-31 lower-case letters, digits, '.', '_' or '-'")
    return value


def parse_positive_int(value):
    number = parse_int(value)
    if number <= 0:
        raise ValueError("expected a whole number above zero")
    return number


def parse_concurrency(value):
    """START_CONCURRENCY: a whole number above zero, or "auto": twice the host's CPU count.
    A start is partly waiting (Docker creating the container, the desktop's services
    coming up), so two per core kept the cores busy without thrashing them: measured
    with `make bench` (scripts/bench_lesson.py) for light and CPU-heavy boots alike."""
    if value.strip().lower() == "auto":
        return 2 * (os.cpu_count() or 1)
    return parse_positive_int(value)


def parse_backend(value):
    """DOCKER_BACKEND: "engine" (one Docker host) or "swarm" (a Docker Swarm's manager)."""
    lowered = value.strip().lower()
    if lowered not in ("engine", "swarm"):
        raise ValueError("expected engine or swarm")
    return lowered


def parse_volume_options(value):
    """HOME_VOLUME_OPTIONS: name=value pairs separated by ";" (an NFS mount's own options
    hold commas), {name} standing for the home's name; {} when empty."""
    options = {}
    for item in filter(None, (part.strip() for part in value.split(";"))):
        name, equals, option = item.partition("=")
        if not equals or not name.strip():
            raise ValueError("expected name=value pairs separated by ';', e.g. "
                             "type=nfs;o=addr=10.0.0.5,rw;device=:/export/homes/{name}")
        options[name.strip()] = option.strip()
    if options and not any("{name}" in option for option in options.values()):
        raise ValueError("no {name} in any value: every home would be the same folder")
    return options


def parse_desktop_access(value):
    """ADMIN_DESKTOP_ACCESS: "off", "view" or "full" (true and false mean full and off)."""
    lowered = value.strip().lower()
    if lowered in ("view", "full", "off"):
        return lowered
    try:
        return "full" if parse_bool(lowered) else "off"
    except ValueError:
        raise ValueError("expected off, view or full") from None


def parse_bool(value):
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


SCHEMA = (
    Setting("PUBLIC_URL", "", parse_optional_url,
            "The portal's external URL as users type it, e.g. https://desk.school.example. "
            "Required unless DOCKER_HOST_URL is set.",
            example="https://desk.school.example"),
    Setting("DOCKER_HOST_URL", "", parse_host,
            "Only the portal's host name (e.g. desk.school.example), an older way to give its "
            "address: used as https://<host> when PUBLIC_URL is empty. Prefer PUBLIC_URL."),
    Setting("LISTEN", "127.0.0.1:8080", parse_listen,
            "Address and port the portal listens on; nginx proxies to it."),
    Setting("SECRET_KEY", None, parse_secret_key,
            "Random key (32+ characters) that signs short-lived login state and CSRF tokens.",
            secret=True, example="change-me-to-the-output-of-openssl-rand-hex-32"),
    Setting("DATABASE_URI", "sqlite:////var/lib/iservdesk/iservdesk.db", parse_database_uri,
            "Where the state lives (SQLite only)."),
    Setting("OAUTH_CLIENT_ID", None, parse_str,
            "Client id registered in IServ (Verwaltung -> System -> Single-Sign-On).",
            example="iservdesk"),
    Setting("OAUTH_CLIENT_SECRET", None, parse_str,
            "Client secret registered in IServ.", secret=True, example="change-me"),
    Setting("OAUTH_REDIRECT_URI", "", parse_optional_url,
            "Callback URL registered in IServ; empty means PUBLIC_URL + /authorize."),
    Setting("OAUTH_ISSUER", "", parse_optional_issuer,
            "The IServ address, e.g. https://school.example/iserv. Discovery is read from "
            "<issuer>/.well-known/openid-configuration or, failing that, from "
            "<host>/iserv/public/.well-known/openid-configuration; a full discovery URL works too. "
            "Required, unless all of OAUTH_AUTHORIZE_URL, OAUTH_TOKEN_URL, OAUTH_USERINFO_URL and "
            "OAUTH_JWKS_URI are set (the old product's way): then ID tokens must name the issuer "
            "https://<host of OAUTH_AUTHORIZE_URL>/iserv, IServ's own; set OAUTH_ISSUER where IServ "
            "names another (a refused sign-in logs the issuer it named).",
            example="https://school.example/iserv"),
    Setting("OAUTH_SCOPES", "", parse_scopes,
            "Scopes to ask for; empty means openid profile email plus uuid, groups/iserv:groups "
            "and roles/iserv:roles where the provider offers them."),
    Setting("OAUTH_AUTHORIZE_URL", "", parse_optional_url,
            "Overrides the discovered authorization endpoint."),
    Setting("OAUTH_TOKEN_URL", "", parse_optional_url,
            "Overrides the discovered token endpoint."),
    Setting("OAUTH_USERINFO_URL", "", parse_optional_url,
            "Overrides the discovered userinfo endpoint."),
    Setting("OAUTH_JWKS_URI", "", parse_optional_url,
            "Overrides the discovered JWKS (signing keys) URL."),
    Setting("OAUTH_TIMEOUT", "10", parse_duration_seconds,
            "How long to wait for an answer from the identity provider. " + DURATION_HELP),
    Setting("USERNAME_CLAIM", "preferred_username", parse_str,
            "Claim holding the account name used in desktop names (IServ: preferred_username)."),
    Setting("ROLE_ADMIN", "admins", parse_list,
            "Comma-separated IServ group account names or role ids whose members are admins."),
    Setting("ROLE_TEACHER", "teachers", parse_list,
            "Comma-separated IServ group account names or role ids whose members are teachers."),
    Setting("CLASSROOM", "on", parse_bool,
            "The classroom: teachers see the desktops of the classes they are in (class pages, "
            "linked from their overview). off: every classroom page and route answers 404."),
    Setting("CLASSROOM_WATCH", "on", parse_bool,
            "Whether teachers may watch a class member's desktop, view only (the desktop itself "
            "refuses their input). Every watch is audit-logged, and the student sees it while it "
            "lasts and for 30 days after. off: class pages without watching."),
    Setting("CLASS_GROUPS", "", parse_list,
            "Which IServ groups are classes: comma-separated patterns over group account names "
            "(e.g. klasse-*,kurs-*); empty: every group. The groups of ROLE_TEACHER and "
            "ROLE_ADMIN are never classes. Set it: a school-wide group would make a class of "
            "the whole school."),
    Setting("ALLOWED_GROUPS", "", parse_list,
            "Comma-separated groups or roles allowed to sign in; empty lets in everyone IServ "
            "lets through. Admins are always allowed."),
    Setting("SESSION_IDLE_TIMEOUT", "4h", parse_duration,
            "A session unused this long ends. Traffic of a desktop viewer it opened counts as "
            "use. " + DURATION_HELP),
    Setting("SESSION_LIFETIME", "12h", parse_duration,
            "A session ends this long after sign-in, used or not, and closes the desktop "
            "viewers it opened. " + DURATION_HELP),
    Setting("DOCKER_URL", "unix:///var/run/docker.sock", parse_docker_url,
            "How to reach the Docker engine."),
    Setting("DOCKER_BACKEND", "engine", parse_backend,
            "engine: desktops run on this host's Docker engine. swarm: DOCKER_URL is a manager of a "
            "Docker Swarm and each desktop is a service on one of its nodes (README: Docker Swarm)."),
    Setting("HOME_VOLUME_DRIVER", "", parse_str,
            "With DOCKER_BACKEND=swarm: the volume driver of homes on shared storage (e.g. local, with "
            "HOME_VOLUME_OPTIONS for NFS), so that every node and the portal reach every home and a "
            "desktop may run on any node. Empty: each home is a volume on the node that first ran its "
            "desktop, which runs there from then on (README: Docker Swarm)."),
    Setting("HOME_VOLUME_OPTIONS", "", parse_volume_options,
            "The driver's options for a home, name=value separated by ';'; {name} is the home's name, "
            "e.g. type=nfs;o=addr=10.0.0.5,rw,nfsvers=4.2;device=:/export/iservdesk/{name}. A folder "
            "…/{name} is made (owned by uid 1000) before the first mount."),
    Setting("DOCKER_TIMEOUT", "10", parse_duration_seconds,
            "How long to wait for an answer from the Docker engine. " + DURATION_HELP),
    Setting("KASM_IMAGE", "kasmweb/ubuntu-focal-desktop:1.15.0", parse_str,
            "Image of the default desktop type."),
    Setting("KASM_CONTAINER_PORT", "6901", parse_port,
            "Port the desktop image serves its web client and WebSocket on."),
    Setting("VNC_PASSWORD", "", parse_str,
            "Leave empty: each container gets its own random password. "
            "Setting it forces one password for all containers.", secret=True),
    Setting("HOST_PORT_RANGE", "7000-8000", parse_port_range,
            "Host ports (bound to 127.0.0.1 only) handed out to desktop containers; on a Swarm, "
            "published on the desktop's node, where only the portal may reach them."),
    Setting("DESKTOPS_FILE", "/etc/iservdesk/desktops.toml", parse_str,
            "Catalog of desktop types (TOML; see the shipped file for its fields)."),
    Setting("MAX_DESKTOPS", "30", parse_positive_int,
            "How many desktops may run (or start) at once on this host; more get 429 and a "
            "message to try later."),
    Setting("START_CONCURRENCY", "auto", parse_concurrency,
            "How many desktops may be created and booting at once; more starts wait in a fair "
            "queue (each person's first before anyone's second) and see their place. auto: twice "
            "the host's CPU count."),
    Setting("CONTAINER_PREFIX", "iservdesk", parse_prefix,
            "Start of container and home-volume names (<prefix>-<user>-<type>); change it only "
            "to run a second installation on the same Docker engine."),
    Setting("ADMIN_DESKTOP_ACCESS", "off", parse_desktop_access,
            "Whether admins may look at other people's desktops, always through the portal's own "
            "viewer and written to the audit log: off (only the owner gets in), view (watch only: "
            "the desktop itself refuses their keyboard and mouse) or full (take over, to help). "
            "true and false mean full and off."),
    Setting("DESKTOP_READY_TIMEOUT", "180", parse_duration_seconds,
            "How long a new desktop may take until its port 6901 answers before it counts as "
            "failed. " + DURATION_HELP),
    Setting("PROXY_TIMEOUT", "120", parse_duration_seconds,
            "How long a desktop may stay silent while answering an HTTP request (a page, a "
            "download) before the portal gives up on it. WebSockets have no such limit. "
            + DURATION_HELP),
    Setting("METRICS_TOKEN", "", parse_str,
            "GET /metrics answers loopback requests that did not come through a proxy; with this "
            "token set, also anyone who sends it as Authorization: Bearer <token>.", secret=True),
    Setting("LOG_LEVEL", "INFO", parse_log_level,
            "DEBUG, INFO, WARNING or ERROR."),
    Setting("IDLE_TIMEOUT", "2h", parse_duration,
            "iservdesk cleanup stops a running desktop nobody has used this long (no page "
            "loaded, no traffic to or from a viewer). Files are kept. 2h outlasts a double "
            "lesson plus a break. " + DURATION_HELP),
    Setting("IDLE_WARNING", "10m", parse_optional_duration,
            "This long before IDLE_TIMEOUT stops an unused desktop, its owner is told on the "
            "overview and in the desktop's tab, with one click to keep it; shorter than "
            "IDLE_TIMEOUT (left unset, half of a shorter IDLE_TIMEOUT). 0 or off: no warning. "
            + DURATION_HELP),
    Setting("PREPARED_UNUSED_TIMEOUT", "30m", parse_duration,
            "iservdesk cleanup stops a desktop prepared for a lesson (on the class page) that its "
            "owner has not opened this long after it was started. Files are kept. " + DURATION_HELP),
    Setting("REMOVE_HOMES_AFTER", "off", parse_optional_duration,
            "iservdesk cleanup deletes the home volumes (and desktops) of people who have not "
            "signed in for this long, e.g. 400d: announced in the journal one pass ahead, deleted "
            "at the next pass unless they signed in meanwhile. off: homes are kept until an admin "
            "deletes them (iservdesk forget). " + DURATION_HELP),
    Setting("UPLOAD_MAX_SIZE", "1g", parse_size,
            "The largest file a person may upload into a home through the portal (the dashboard's "
            "files, and a teacher's material). A size: bytes, or with k, m, g (1g = 1024 MiB)."),
    Setting("HOME_QUOTA", "5g", parse_size,
            "How much a home may hold for uploads through the portal: an upload that would take it "
            "past this is refused, saying how much is used. What a desktop writes itself is not "
            "limited by Docker's volumes; the admin panel lists homes by size and flags those "
            "over it. A size, as UPLOAD_MAX_SIZE."),
    Setting("STOP_ON_LOGOUT", "off", parse_bool,
            "on: signing out stops the person's desktops (files kept) once they have no other "
            "session, as the old product did; for computers shared between students, or a host with "
            "few desktops to go round. off: a desktop outlives a sign-out until IDLE_TIMEOUT, so a "
            "student who signs out by mistake or changes rooms finds it still running."),
    Setting("REMOVE_STOPPED_AFTER", "7d", parse_duration,
            "iservdesk cleanup removes a container that has been stopped this long; the home "
            "volume stays, so the next start gets a fresh desktop with the same files. 7d keeps "
            "a desktop ready for next week's lesson. " + DURATION_HELP),
)

BY_NAME = {setting.name: setting for setting in SCHEMA}


class Config:
    """Parsed settings as lower-case attributes, e.g. `config.public_url`."""

    def __init__(self, values, path=None):
        self.path = path
        self.notes = []  # warnings of load(): settings of the old product, and what they mean here
        for name, value in values.items():
            setattr(self, name.lower(), value)

    def __repr__(self):
        return "<Config %s>" % (self.path or "(environment)")


def read_file(path):
    """Return the raw NAME -> value pairs of an env-style file; ConfigError if unreadable."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as error:
        raise ConfigError("cannot read configuration file %s: %s" % (path, error.strerror)) from None
    except UnicodeDecodeError:
        raise ConfigError("configuration file %s is not UTF-8 text" % path) from None
    values = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.line
            raise ConfigError("%s line %d: cannot parse, expected NAME=value" % (path, line))
        if binding.key is not None:
            values[binding.key] = binding.value
    return values


def load(path=None, environ=None):
    """Load settings from `path` (an env file; None: environment only) and `environ`.

    Real environment variables win over the file. Names in the file that SCHEMA does
    not know are an error (a typo must not silently fall back to a default); the
    environment may hold anything. Raises ConfigError naming the first bad variable.
    """
    environ = os.environ if environ is None else environ
    raw = {}
    notes = []  # one line each, logged at start-up and shown by `iservdesk check`
    if path is not None:
        for name, value in read_file(path).items():
            if name in SEED_UNUSED:
                notes.append("%s: not used by iservdesk (%s); remove it" % (name, SEED_UNUSED[name]))
                continue
            if name not in BY_NAME:
                raise ConfigError("%s: unknown setting in %s" % (name, path))
            raw[name] = value if value is not None else ""
    for name in BY_NAME:
        if name in environ:
            raw[name] = environ[name]

    database = raw.get("DATABASE_URI", "").strip()
    if database.split(":", 1)[0].split("+", 1)[0].lower() in SERVER_DATABASES:
        # The old product's database: iservdesk does not use it, `import-seed` reads it.
        notes.append("DATABASE_URI: %s://... is the old product's database; iservdesk keeps its state in "
                     "SQLite at %s (set DATABASE_URI=sqlite:////path.db to choose), and `iservdesk import-seed "
                     "--database <that URL>` reads users and desktops from the old one"
                     % (database.split(":", 1)[0], BY_NAME["DATABASE_URI"].default[len("sqlite:///"):]))
        raw["SEED_DATABASE_URI"] = database
        del raw["DATABASE_URI"]

    values = {}
    for setting in SCHEMA:
        value = raw.get(setting.name, "").strip()
        if value == "":
            if setting.default is None:
                raise ConfigError("%s: missing, it must be set" % setting.name)
            value = setting.default
        try:
            values[setting.name] = setting.parse(value)
        except ValueError as error:
            shown = "" if setting.secret else " %r" % value
            raise ConfigError("%s:%s is not valid: %s" % (setting.name, shown, error)) from None

    if not values["PUBLIC_URL"]:
        if not values["DOCKER_HOST_URL"]:
            raise ConfigError("PUBLIC_URL: missing, set it (or DOCKER_HOST_URL) to the portal's address")
        values["PUBLIC_URL"] = "https://" + values["DOCKER_HOST_URL"]
    if values["IDLE_WARNING"] is not None and values["IDLE_WARNING"] >= values["IDLE_TIMEOUT"]:
        if raw.get("IDLE_WARNING", "").strip():
            raise ConfigError("IDLE_WARNING: must be shorter than IDLE_TIMEOUT (%s), or 0 for no warning"
                              % raw.get("IDLE_TIMEOUT", BY_NAME["IDLE_TIMEOUT"].default))
        values["IDLE_WARNING"] = values["IDLE_TIMEOUT"] / 2  # the default, with a short IDLE_TIMEOUT
    if not values["OAUTH_REDIRECT_URI"]:
        values["OAUTH_REDIRECT_URI"] = values["PUBLIC_URL"] + "/authorize"
    if not values["OAUTH_ISSUER"]:
        endpoints = ("OAUTH_AUTHORIZE_URL", "OAUTH_TOKEN_URL", "OAUTH_USERINFO_URL", "OAUTH_JWKS_URI")
        if not all(values[name] for name in endpoints):
            raise ConfigError("OAUTH_ISSUER: missing, set it to the IServ address (or set all of %s)"
                              % ", ".join(endpoints))
        parts = urllib.parse.urlsplit(values["OAUTH_AUTHORIZE_URL"])
        values["OAUTH_ISSUER"] = "%s://%s/iserv" % (parts.scheme, parts.netloc)
        notes.append("OAUTH_ISSUER: not set; ID tokens must name the issuer %s (IServ's, from "
                     "OAUTH_AUTHORIZE_URL); set OAUTH_ISSUER if IServ names another" % values["OAUTH_ISSUER"])
    if values["HOME_VOLUME_OPTIONS"] and not values["HOME_VOLUME_DRIVER"]:
        raise ConfigError("HOME_VOLUME_OPTIONS: set, but HOME_VOLUME_DRIVER is not (e.g. local)")
    if values["HOME_VOLUME_DRIVER"] and values["DOCKER_BACKEND"] != "swarm":
        notes.append("HOME_VOLUME_DRIVER: used with DOCKER_BACKEND=swarm only; homes stay Docker's local "
                     "volumes on this host")
    values["SEED_DATABASE_URI"] = raw.get("SEED_DATABASE_URI", "")
    config = Config(values, path)
    config.notes.extend(notes)
    return config


def env_example():
    """The text of `.env.example`: every setting with its help, secrets as placeholders."""
    lines = ["# iservdesk settings: copy to /etc/iservdesk/iservdesk.env and edit.",
             "# Generated from iservdesk/config.py (make docs); real environment variables win.",
             ""]
    for setting in SCHEMA:
        lines.append("# " + setting.help)
        if setting.default is None:
            lines.append("# (required)")
        value = setting.example if setting.example is not None else setting.default
        lines.append("%s=%s" % (setting.name, value))
        lines.append("")
    return "\n".join(lines)


def markdown_table():
    """The README's settings table."""
    rows = ["| Setting | Default | Meaning |", "|---|---|---|"]
    for setting in SCHEMA:
        if setting.default is None:
            default = "*required*"
        elif setting.default == "":
            default = "(empty)"
        else:
            default = "`%s`" % setting.default
        meaning = setting.help + (" Secret: never logged." if setting.secret else "")
        rows.append("| `%s` | %s | %s |" % (setting.name, default, meaning.replace("|", "\\|")))
    return "\n".join(rows)
