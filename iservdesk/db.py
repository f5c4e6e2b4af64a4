"""State in SQLite: peewee models, the connection settings, and forward schema migrations.

The schema is created and changed only by MIGRATIONS (plain SQL, never derived from the
models, so an old migration means the same thing forever); PRAGMA user_version records
how many have run. The models describe the current schema for queries; a test checks
they agree. Docker remains the truth about containers: the desktops table is what we
know about them, reconciled elsewhere.

The only module importing peewee's errors: a file that cannot be opened, read or locked
becomes DatabaseError (503) at every statement, and a broken constraint at the end of a
write() becomes errors.Conflict (409). Inside a transaction peewee's IntegrityError
stays what it is, so that get_or_create() and friends work.
"""

import contextlib
import datetime
import json
import logging
import os
import secrets
import time

import peewee

from .errors import Conflict, DatabaseError  # noqa: F401 (DatabaseError: callers use db.DatabaseError)

log = logging.getLogger(__name__)

# Milliseconds a writer waits for another writer's lock before SQLite gives up.
BUSY_TIMEOUT_MS = 15000

database = peewee.DatabaseProxy()


@contextlib.contextmanager
def _translated(path):
    """peewee's errors of an unusable file (OperationalError: cannot open, locked, disk
    I/O; its base DatabaseError: not a database, malformed) as our DatabaseError. Errors
    of a statement itself (IntegrityError, ProgrammingError, DataError) pass unchanged."""
    try:
        yield
    except peewee.OperationalError as error:
        raise DatabaseError(str(error), path) from error
    except peewee.DatabaseError as error:
        if type(error) is not peewee.DatabaseError:
            raise
        raise DatabaseError(str(error), path) from error


class SqliteDatabase(peewee.SqliteDatabase):
    """peewee's SqliteDatabase whose connections and statements raise DatabaseError for a
    file that cannot be used (see _translated)."""

    def connect(self, *args, **kwargs):
        with _translated(self.database):
            return super().connect(*args, **kwargs)

    def execute_sql(self, *args, **kwargs):
        with _translated(self.database):
            return super().execute_sql(*args, **kwargs)


class UTCDateTimeField(peewee.Field):
    """Timezone-aware datetimes stored as sortable UTC text (2026-11-26T07:17:08.000000Z)."""

    field_type = "TEXT"
    FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

    def db_value(self, value):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime for %s: timestamps must be timezone-aware" % self.name)
        return value.astimezone(datetime.timezone.utc).strftime(self.FORMAT)

    def python_value(self, value):
        if value is None:
            return None
        return datetime.datetime.strptime(value, self.FORMAT).replace(tzinfo=datetime.timezone.utc)


class JSONField(peewee.TextField):
    def db_value(self, value):
        return json.dumps(value, sort_keys=True)

    def python_value(self, value):
        return json.loads(value) if value is not None else None


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class User(BaseModel):
    """Someone who signed in. Keyed by the provider's stable uuid (or sub), never the name."""

    uuid = peewee.TextField(unique=True)
    username = peewee.TextField(index=True)
    display_name = peewee.TextField(default="")
    email = peewee.TextField(default="")
    roles = JSONField(default=list)
    groups = JSONField(default=list)
    created_at = UTCDateTimeField(default=utcnow)
    last_login_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "users"


class Group(BaseModel):
    """The name IServ shows for a group ("Klasse 7a"), by its account name (`act`, what
    iservdesk matches on), as the last sign-in of one of its members said."""

    act = peewee.TextField(primary_key=True)
    name = peewee.TextField()
    seen_at = UTCDateTimeField()

    class Meta:
        table_name = "groups"

    @classmethod
    def remember(cls, names, now):
        """Store {act: name} (from oidc.group_names); a group keeps its latest name."""
        for act, name in names.items():
            cls.insert(act=act, name=name, seen_at=now).on_conflict(
                conflict_target=[cls.act], update={cls.name: name, cls.seen_at: now}).execute()

    @classmethod
    def names(cls, acts):
        """{act: name} for those of `acts` a name is known for."""
        acts = list(acts)
        return {group.act: group.name for group in cls.select().where(cls.act.in_(acts))} if acts else {}


class Preparation(BaseModel):
    """A class's desktops of one type, started for a lesson at `run_at` (classroom's prepare).
    `outcome`: {"started": [...], "skipped": [{"username", "why"}]} once it ran."""

    group_name = peewee.TextField()
    desktop_type = peewee.TextField()
    run_at = UTCDateTimeField(index=True)
    created_by = peewee.TextField()
    created_at = UTCDateTimeField()
    started_at = UTCDateTimeField(null=True)
    cancelled_at = UTCDateTimeField(null=True)
    outcome = JSONField(default=dict)

    class Meta:
        table_name = "preparations"


class HomeSize(BaseModel):
    """How many bytes a home volume held when it was last measured (files.py, cleanup)."""

    volume = peewee.TextField(primary_key=True)
    size = peewee.IntegerField()
    measured_at = UTCDateTimeField()

    class Meta:
        table_name = "home_sizes"

    @classmethod
    def remember(cls, volume, size, now):
        cls.insert(volume=volume, size=size, measured_at=now).on_conflict(
            conflict_target=[cls.volume], update={cls.size: size, cls.measured_at: now}).execute()


class Handout(BaseModel):
    """Something a teacher gives a class (handouts.py): `material` (files copied read-only
    into ~/Material/<class>/<name>/) or an `assignment` (a folder ~/Abgabe/<name>/ that is
    collected). Material without handed_out_at is still being uploaded."""

    group_name = peewee.TextField()
    kind = peewee.TextField()
    name = peewee.TextField()
    created_by = peewee.TextField()
    created_at = UTCDateTimeField()
    handed_out_at = UTCDateTimeField(null=True)
    deadline = UTCDateTimeField(null=True)
    collected_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "handouts"


class Delivery(BaseModel):
    """A handout placed in one home volume (of `user`)."""

    handout = peewee.ForeignKeyField(Handout, on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    volume = peewee.TextField()
    delivered_at = UTCDateTimeField()

    class Meta:
        table_name = "deliveries"
        primary_key = peewee.CompositeKey("handout", "volume")


class ApiToken(BaseModel):
    """A token for scripts (tokens.py): only its hash is stored. `admin`: a service
    account's token with admin rights (made by an admin); a person's token has their rights."""

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    name = peewee.TextField()
    token_hash = peewee.TextField(unique=True)
    admin = peewee.BooleanField(default=False)
    created_by = peewee.TextField()
    created_at = UTCDateTimeField()
    expires_at = UTCDateTimeField()
    last_used_at = UTCDateTimeField(null=True)
    revoked_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "api_tokens"


class HomeNode(BaseModel):
    """On a Swarm without shared homes: the node that holds a home volume, so that every
    later desktop with that home runs there (desktops/swarm.py)."""

    volume = peewee.TextField(primary_key=True)
    node = peewee.TextField()  # the node's id
    hostname = peewee.TextField()  # for people
    pinned_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "home_nodes"


class Session(BaseModel):
    """A signed-in browser or API client. Only the hash of the session id is stored."""

    id_hash = peewee.TextField(primary_key=True)
    user = peewee.ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    created_at = UTCDateTimeField(default=utcnow)
    last_seen_at = UTCDateTimeField(default=utcnow)
    expires_at = UTCDateTimeField(index=True)
    id_token = peewee.TextField(null=True)  # sent back as id_token_hint at logout only

    class Meta:
        table_name = "sessions"


class Login(BaseModel):
    """A sign-in in progress: what the callback must find to accept the provider's answer.

    `state` and the browser-binding cookie are stored hashed; a row is used once.
    """

    state_hash = peewee.TextField(primary_key=True)
    browser_hash = peewee.TextField()
    nonce = peewee.TextField()
    code_verifier = peewee.TextField()
    return_to = peewee.TextField(default="/")
    created_at = UTCDateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "logins"


class Desktop(BaseModel):
    """One container per (user, desktop type), as far as we know it."""

    user = peewee.ForeignKeyField(User, backref="desktops", on_delete="CASCADE")
    desktop_type = peewee.TextField()
    name = peewee.TextField(unique=True)  # <username>-<type>, the proxy path
    container_id = peewee.TextField(null=True)
    host_port = peewee.IntegerField(null=True, unique=True)
    secret = peewee.TextField(null=True)  # the container's VNC_PW; never sent to a browser
    status = peewee.TextField(default="new", index=True)
    message = peewee.TextField(default="")
    created_at = UTCDateTimeField(default=utcnow)
    started_at = UTCDateTimeField(null=True)
    last_access_at = UTCDateTimeField(null=True)
    stopped_at = UTCDateTimeField(null=True)  # last became stopped or error; cleanup counts from here
    # The Docker volume mounted as home, once chosen for this row's owner (desktops.homes.Homes.choose):
    # homes belong to a person (the volume's owner label), not to a name.
    home_volume = peewee.TextField(null=True)
    # The container's VNC_VIEW_ONLY_PW (KasmVNC's kasm_viewer): for watching, never sent to a browser.
    view_secret = peewee.TextField(null=True)
    queued_at = UTCDateTimeField(null=True)  # when its start began waiting for a slot (status queued)
    # Started by a preparation for a lesson and not opened by its owner since (cleanup stops it
    # after PREPARED_UNUSED_TIMEOUT); cleared at the owner's first use.
    prepared_at = UTCDateTimeField(null=True)
    preparation_id = peewee.IntegerField(null=True)
    # Where host_port is: a Swarm node's address; None for 127.0.0.1 (one Docker engine).
    address = peewee.TextField(null=True)

    class Meta:
        table_name = "desktops"
        indexes = ((("user", "desktop_type"), True),)

    @property
    def target(self):
        """Where the proxy reaches the container (proxy.endpoint() reads it)."""
        return (self.address, self.host_port) if self.address else self.host_port


class Event(BaseModel):
    """The audit log: who did what to which desktop or account."""

    at = UTCDateTimeField(default=utcnow, index=True)
    actor = peewee.TextField(default="")
    action = peewee.TextField()
    target = peewee.TextField(default="")
    detail = JSONField(default=dict)

    class Meta:
        table_name = "events"


class KeyValue(BaseModel):
    """Facts about this installation, e.g. its id (name -> value)."""

    name = peewee.TextField(primary_key=True)
    value = peewee.TextField()

    class Meta:
        table_name = "meta"


MODELS = (User, Group, Session, Login, Desktop, Preparation, HomeSize, Handout, Delivery, ApiToken, Event,
          KeyValue)

# Forward migrations. Append only; never edit one that has shipped.
MIGRATIONS = (
    ("users, sessions and desktops", """
        CREATE TABLE users (
            id INTEGER NOT NULL PRIMARY KEY,
            uuid TEXT NOT NULL UNIQUE,
            username TEXT NOT NULL,
            display_name TEXT NOT NULL DEFAULT '',
            email TEXT NOT NULL DEFAULT '',
            roles TEXT NOT NULL DEFAULT '[]',
            groups TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL,
            last_login_at TEXT
        );
        CREATE INDEX users_username ON users (username);
        CREATE TABLE sessions (
            id_hash TEXT NOT NULL PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        CREATE INDEX sessions_user_id ON sessions (user_id);
        CREATE TABLE desktops (
            id INTEGER NOT NULL PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            desktop_type TEXT NOT NULL,
            name TEXT NOT NULL UNIQUE,
            container_id TEXT,
            host_port INTEGER UNIQUE,
            secret TEXT,
            status TEXT NOT NULL DEFAULT 'new',
            message TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            started_at TEXT,
            last_access_at TEXT
        );
        CREATE UNIQUE INDEX desktops_user_id_desktop_type ON desktops (user_id, desktop_type);
    """),
    ("audit log", """
        CREATE TABLE events (
            id INTEGER NOT NULL PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL DEFAULT '',
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX events_at ON events (at);
    """),
    ("sign-in attempts and session tokens", """
        CREATE TABLE logins (
            state_hash TEXT NOT NULL PRIMARY KEY,
            browser_hash TEXT NOT NULL,
            nonce TEXT NOT NULL,
            code_verifier TEXT NOT NULL,
            return_to TEXT NOT NULL DEFAULT '/',
            created_at TEXT NOT NULL
        );
        CREATE INDEX logins_created_at ON logins (created_at);
        ALTER TABLE sessions ADD COLUMN id_token TEXT;
        CREATE INDEX sessions_expires_at ON sessions (expires_at);
    """),
    ("installation metadata", """
        CREATE TABLE meta (
            name TEXT NOT NULL PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE INDEX desktops_status ON desktops (status);
    """),
    # Desktops stopped before this version start their REMOVE_STOPPED_AFTER now.
    ("when desktops stopped", """
        ALTER TABLE desktops ADD COLUMN stopped_at TEXT;
        UPDATE desktops SET stopped_at = strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now')
            WHERE status IN ('stopped', 'error');
    """),
    # Rows of older releases keep NULL: their volume is chosen (and recorded) at the next
    # container they get, by the rules in desktops.homes.Homes.choose.
    ("which home volume a desktop mounts", """
        ALTER TABLE desktops ADD COLUMN home_volume TEXT;
    """),
    # Containers of older releases keep NULL: they can be watched after their next new container.
    ("the view-only secret of a desktop", """
        ALTER TABLE desktops ADD COLUMN view_secret TEXT;
    """),
    ("the names of groups", """
        CREATE TABLE groups (
            act TEXT NOT NULL PRIMARY KEY,
            name TEXT NOT NULL,
            seen_at TEXT NOT NULL
        );
    """),
    # Starts that wait for a slot (status queued) are resumed in this order after a restart.
    ("when a start began waiting", """
        ALTER TABLE desktops ADD COLUMN queued_at TEXT;
    """),
    ("prepared desktops", """
        CREATE TABLE preparations (
            id INTEGER NOT NULL PRIMARY KEY,
            group_name TEXT NOT NULL,
            desktop_type TEXT NOT NULL,
            run_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT,
            cancelled_at TEXT,
            outcome TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX preparations_run_at ON preparations (run_at);
        ALTER TABLE desktops ADD COLUMN prepared_at TEXT;
        ALTER TABLE desktops ADD COLUMN preparation_id INTEGER REFERENCES preparations (id) ON DELETE SET NULL;
    """),
    ("home sizes, handouts and their deliveries", """
        CREATE TABLE home_sizes (
            volume TEXT NOT NULL PRIMARY KEY,
            size INTEGER NOT NULL,
            measured_at TEXT NOT NULL
        );
        CREATE TABLE handouts (
            id INTEGER NOT NULL PRIMARY KEY,
            group_name TEXT NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            handed_out_at TEXT,
            deadline TEXT,
            collected_at TEXT
        );
        CREATE UNIQUE INDEX handouts_group_name_kind_name ON handouts (group_name, kind, name);
        CREATE TABLE deliveries (
            handout_id INTEGER NOT NULL REFERENCES handouts (id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            volume TEXT NOT NULL,
            delivered_at TEXT NOT NULL,
            PRIMARY KEY (handout_id, volume)
        );
        CREATE INDEX deliveries_user_id ON deliveries (user_id);
    """),
    ("API tokens", """
        CREATE TABLE api_tokens (
            id INTEGER NOT NULL PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            admin INTEGER NOT NULL DEFAULT 0,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            last_used_at TEXT,
            revoked_at TEXT
        );
        CREATE INDEX api_tokens_user_id ON api_tokens (user_id);
    """),
    ("Docker Swarm: desktops on nodes, homes pinned to nodes", """
        ALTER TABLE desktops ADD COLUMN address TEXT;
        CREATE TABLE home_nodes (
            volume TEXT NOT NULL PRIMARY KEY,
            node TEXT NOT NULL,
            hostname TEXT NOT NULL,
            pinned_at TEXT NOT NULL
        );
    """),
)

SCHEMA_VERSION = len(MIGRATIONS)


def open_database(path):
    """Return a peewee database for the SQLite file at `path` and bind the models to it.

    Connections are per greenlet (peewee's thread-local state is greenlet-local once
    gevent has patched threading): WAL so readers never block the writer, a busy
    timeout so concurrent writers wait instead of failing.
    """
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise DatabaseError("DATABASE_URI: folder %s does not exist" % directory)
    db = SqliteDatabase(path, thread_safe=True, pragmas={
        "busy_timeout": BUSY_TIMEOUT_MS,
        "foreign_keys": 1,
        "synchronous": "normal",
    })
    _enable_wal(db)
    database.initialize(db)
    return db


def _enable_wal(db):
    """Switch the file to WAL (a persistent property of the file), retrying while locked.

    The switch needs an exclusive lock, and SQLite answers "database is locked" at once,
    without its busy handler, when two processes create the file at the same moment.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    with db.connection_context():
        while True:
            try:
                if db.execute_sql("PRAGMA journal_mode = wal").fetchone()[0] == "wal":
                    return
            except DatabaseError as error:
                if "locked" not in error.reason or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
                continue
            raise DatabaseError("DATABASE_URI: %s cannot use write-ahead logging" % db.database)


@contextlib.contextmanager
def write(db):
    """A write transaction that takes the lock up front (BEGIN IMMEDIATE); yields peewee's
    transaction (rollback() ends it early).

    A deferred transaction that reads first and then writes can fail at once with
    "database is locked" when another writer got there first; the busy timeout only
    helps if the lock is requested at BEGIN. Raises DatabaseError when the file cannot
    be used (the commit included), and Conflict when the transaction broke a UNIQUE or
    other constraint (two requests racing to create the same row).
    """
    try:
        with _translated(db.database), db.atomic("IMMEDIATE") as transaction:
            yield transaction
    except peewee.IntegrityError as error:
        raise Conflict(detail="%s: %s" % (db.database, error)) from error


def schema_version(db):
    return db.execute_sql("PRAGMA user_version").fetchone()[0]


def migrate(db):
    """Bring the schema up to SCHEMA_VERSION. Idempotent and safe to run concurrently.

    Returns the list of migration titles applied (empty when already current). Raises
    DatabaseError when the file is newer than this code (a downgrade).
    """
    applied = []
    with db.connection_context():
        with write(db):
            current = schema_version(db)
            if current > SCHEMA_VERSION:
                raise DatabaseError(
                    "database schema version %d is newer than this iservdesk knows (%d); "
                    "install the newer iservdesk again" % (current, SCHEMA_VERSION))
            for number in range(current, SCHEMA_VERSION):
                title, script = MIGRATIONS[number]
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute_sql(statement)
                applied.append(title)
            if applied:
                db.execute_sql("PRAGMA user_version = %d" % SCHEMA_VERSION)
    for title in applied:
        log.info("database migrated: %s", title)
    return applied


def installation_id(db):
    """This installation's random id, made on first use. Labels our containers, so a second
    installation (or a test run) on the same engine never touches them."""
    with write(db):
        row = KeyValue.get_or_none(KeyValue.name == "installation_id")
        if row is None:
            row = KeyValue.create(name="installation_id", value=secrets.token_hex(6))
    return row.value


def record(action, actor="", target="", **detail):
    """Append an audit event. Call inside the request's connection."""
    Event.create(action=action, actor=actor, target=target, detail=detail)


def check(db):
    """Raise DatabaseError unless the database answers and is current.

    Uses the caller's connection (opening one if needed, which the caller closes).
    """
    version = schema_version(db)
    if version != SCHEMA_VERSION:
        raise DatabaseError("schema version %d, expected %d (run iservdesk init-db)"
                            % (version, SCHEMA_VERSION))
