"""Moving from iserv-remote-desktop (the old product, SEED.md): `iservdesk import-seed`.

The old product ran one container per person and desktop type, named
kasm-<user>-<type>-<session id> and labelled managed_by=iserv-remote-desktop, and kept the
person's files inside it (no volume). An import finds those containers on the engine,
matches each to a person here (by the IServ uuid its database gives, else by the account
name of someone who has signed in here; a person its database names who has not signed in
yet gets their user row now, so their files wait for them), and, once an admin confirms,
copies the container's /home/kasm-user into that person's home volume of the same type,
then removes the old container. A home that iservdesk has already used gets the files in
a folder of their own ("Alter Desktop <session id>"), so nothing in it is overwritten.

The old database (SQLite, or PostgreSQL with Debian's python3-psycopg2) is read only for
people (uuid, account name, name) and the last access of each container; its tables are
found by their columns, as its releases differ.
"""

import dataclasses
import datetime
import logging
import re
import sqlite3
import tarfile
import urllib.parse

from . import db
from .desktops import DESKTOP, OWNER, TYPE, USER, Status
from .desktops.homes import free_name
from .errors import IServDeskError
from .files import _ChunkReader, _Sink, reader_image, tar_header

log = logging.getLogger(__name__)

LABEL = {"managed_by": "iserv-remote-desktop"}
NAME = re.compile(r"^kasm-(?P<rest>.+)-(?P<session>[A-Za-z0-9]+)$")
UUID_COLUMNS = ("uuid", "iserv_uuid", "sub", "oauth_id", "iserv_id")


class SeedError(IServDeskError):
    status = 400
    code = "seed_database"


@dataclasses.dataclass
class Move:
    """One container of the old product and what the import does with it."""

    container_id: str
    container: str  # its name
    username: str
    desktop_type: str
    user: db.User = None  # the person here; None: cannot be moved (see why)
    why: str = ""  # why not, when it cannot be moved
    last_access: datetime.datetime = None

    def json(self):
        return {"container": self.container, "username": self.username, "desktop_type": self.desktop_type,
                "person": self.user.uuid if self.user is not None else None, "why": self.why or None,
                "last_access": self.last_access.isoformat() if self.last_access else None}

    def line(self):
        if self.why:
            return "skip %s: %s" % (self.container, self.why)
        return "move %s: the files of %s (%s) into their %s home" % (
            self.container, self.user.username, self.user.uuid, self.desktop_type)


def parse_name(name, slugs):
    """(account name, desktop type, session id) of kasm-<user>-<type>-<session id>, the type
    one of `slugs` (types have dashes, so the longest that fits wins); or None."""
    match = NAME.match(name.lstrip("/"))
    if not match:
        return None
    rest = match.group("rest")
    for slug in sorted(slugs, key=len, reverse=True):
        if rest.endswith("-" + slug) and len(rest) > len(slug) + 1:
            return rest[:-len(slug) - 1], slug, match.group("session")
    return None


def read_database(url):
    """{"people": {account name: {"uuid", "name", "email"}}, "access": {container name:
    datetime}} from the old product's database at `url`. SeedError when it cannot be read."""
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    try:
        if scheme == "sqlite":
            path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url[len("sqlite://"):]
            connection = sqlite3.connect("file:%s?mode=ro" % urllib.parse.quote(path), uri=True)
            tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]

            def columns(table):
                return [row[1] for row in connection.execute('PRAGMA table_info("%s")' % table.replace('"', '""'))]
        elif scheme in ("postgresql", "postgres"):
            try:
                import psycopg2
            except ImportError:
                raise SeedError("Reading a PostgreSQL database needs Debian's python3-psycopg2: "
                                "apt install python3-psycopg2") from None
            connection = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
            cursor = connection.cursor()
            cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            tables = [row[0] for row in cursor.fetchall()]

            def columns(table):
                cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))
                return [row[0] for row in cursor.fetchall()]
        else:
            raise SeedError("The old database must be sqlite:///... or postgresql://... (got %s://)." % scheme)
        return _read(connection, tables, columns)
    except (sqlite3.Error, OSError) as error:
        raise SeedError("Cannot read the old database: %s" % error) from None
    except IServDeskError:
        raise
    except Exception as error:  # psycopg2's errors, without importing it where it is absent
        raise SeedError("Cannot read the old database: %s" % str(error).splitlines()[0]) from None


def _read(connection, tables, columns):
    people, access = {}, {}

    def rows(table, names):
        quoted = ", ".join('"%s"' % name for name in names)
        cursor = connection.cursor()
        cursor.execute('SELECT %s FROM "%s"' % (quoted, table))
        return cursor.fetchall()
    for table in tables:
        present = columns(table)
        if "username" in present and "container_name" not in present:
            uuid = next((name for name in UUID_COLUMNS if name in present), None)
            wanted = ["username"] + [name for name in (uuid, "name", "display_name", "email")
                                     if name and name in present]
            for values in rows(table, wanted):
                record = dict(zip(wanted, values))
                if not record["username"]:
                    continue
                people[str(record["username"]).lower()] = {
                    "uuid": str(record[uuid]) if uuid and record.get(uuid) else None,
                    "name": record.get("display_name") or record.get("name") or "",
                    "email": record.get("email") or ""}
        if "container_name" in present:
            stamp = next((name for name in ("last_accessed", "last_access", "last_access_at") if name in present), None)
            if stamp:
                for name, value in rows(table, ["container_name", stamp]):
                    moment = _moment(value)
                    if name and moment:
                        access[str(name)] = moment
    return {"people": people, "access": access}


def _moment(value):
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def plan(desktops, old=None):
    """[Move] for every container of the old product on the engine (reads only). `old`: what
    read_database() found, or None."""
    old = old or {"people": {}, "access": {}}
    slugs = [desktop_type.slug for desktop_type in desktops.catalog]
    moves = []
    for container in sorted(desktops.engine.list(LABEL), key=lambda item: item.name):
        parsed = parse_name(container.name, slugs)
        if parsed is None:
            moves.append(Move(container.id, container.name, "", "", why="the name is not kasm-<user>-<type>-<id> "
                              "with a desktop type of this catalog (%s)" % ", ".join(slugs)))
            continue
        username, slug, _ = parsed
        move = Move(container.id, container.name, username, slug, last_access=old["access"].get(container.name))
        person = old["people"].get(username.lower())
        user = None
        if person and person["uuid"]:
            user = db.User.get_or_none(db.User.uuid == person["uuid"])
        if user is None:
            user = (db.User.select().where(db.User.username == username.lower())
                    .order_by(db.User.created_at.desc()).first())
            if user is not None and person and person["uuid"] and user.uuid != person["uuid"]:
                move.why = ("the account name %s belongs to another person here now (uuid %s, not %s)"
                            % (username, user.uuid, person["uuid"]))
                user = None
        if user is None and not move.why:
            if person and person["uuid"]:
                user = db.User(uuid=person["uuid"], username=username.lower(),
                               display_name=person["name"] or username, email=person["email"])  # made at run()
            else:
                move.why = ("%s has not signed in here, and the old database (--database) does not give "
                            "their IServ uuid: they sign in once, then import again" % username)
        move.user = user
        moves.append(move)
    return moves


def run(desktops, moves, actor, now):
    """Move each movable container's files into its person's home, then remove it.
    Returns [(Move, error text or "")]."""
    done = []
    for move in moves:
        if move.why:
            continue
        try:
            _move(desktops, move, actor, now)
            done.append((move, ""))
        except IServDeskError as error:
            log.warning("import of %s failed: %s", move.container, error.detail)
            done.append((move, error.detail))
    return done


def _move(desktops, move, actor, now):
    with db.write(desktops.database):
        user = move.user
        if user.id is None:
            user.created_at = now
            user.last_login_at = move.last_access  # REMOVE_HOMES_AFTER counts from their last use
            user.save()
        row = db.Desktop.get_or_none((db.Desktop.user == user) & (db.Desktop.desktop_type == move.desktop_type))
        if row is None:
            name = free_name(user, move.desktop_type,
                             lambda candidate: db.Desktop.select().where(db.Desktop.name == candidate).exists())
            row = db.Desktop.create(user=user, desktop_type=move.desktop_type, name=name, status=Status.REMOVED,
                                    created_at=now, last_access_at=move.last_access)
    row.user = user
    labels = {**desktops.labels, OWNER: user.uuid, USER: user.username, TYPE: move.desktop_type, DESKTOP: row.name}
    volume = desktops.homes.choose(row, labels)
    image = reader_image(desktops, move.desktop_type)
    folder = "Alter Desktop %s" % move.container.rsplit("-", 1)[1] if row.started_at else ""
    with desktops.engine.open_home(volume, image, labels, writable=True) as home:
        home.write("", _renamed(desktops.engine.container_home(move.container_id), folder))
    desktops.engine.remove(move.container_id)
    with db.write(desktops.database):
        db.record("seed.import", actor=actor, target=row.name, container=move.container, volume=volume,
                  folder=folder or None)
    log.info("imported the files of %s into home %s%s and removed it", move.container, volume,
             " (folder %s)" % folder if folder else "")


def _renamed(chunks, folder):
    """The tar stream `chunks` of a home ("kasm-user/...") as entries of the home itself, or
    of `folder` in it; links stay links (inside the home they resolve as before)."""
    sink = _Sink()
    with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as source, \
            tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as target:
        if folder:
            sink.write(tar_header(folder, "folder"))
        for member in source:
            parts = member.name.split("/")[1:]
            if not parts or any(part in ("", ".", "..") for part in parts):
                continue
            member.name = "/".join(([folder] if folder else []) + parts)
            if member.islnk():  # a hard link names another entry of the same stream
                member.linkname = "/".join(([folder] if folder else []) + member.linkname.split("/")[1:])
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
            yield sink.take()
    yield sink.take()
