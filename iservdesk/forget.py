"""Deleting a person's data (DSGVO): `iservdesk forget <username|uuid>`.

What goes: every container of the person (their desktops' rows, and any container of this
installation labelled with their uuid), every home volume labelled with their uuid or
mounted by their desktops, their desktop rows, sessions and the user row, and the copies
of their work collected for assignments (handouts.py). The audit log
stays, as the record of what happened, but names them no more: wherever their account
name (or a desktop name made from it) stands in an entry, a pseudonym stands instead
("person-" and ten hex digits of an HMAC of their uuid with SECRET_KEY: the same person
gets the same pseudonym, and nobody without the key can go back). The forgetting itself
is audited under that pseudonym.

An account name IServ has given to someone else since (homes.py) is another uuid: only
the uuid given, or the newest holder of the name, is forgotten. Entries of the audit log
name accounts, not uuids, so entries of both holders of a reused name get the pseudonym.
"""

import dataclasses
import hashlib
import hmac
import logging

from . import db, handouts
from .handouts import files_dir_of
from .desktops import OWNER
from .errors import NotFound

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Plan:
    user: db.User
    pseudonym: str
    containers: list  # container names
    volumes: list  # home volume names
    desktops: list  # desktop names (rows)
    sessions: int
    events: int  # audit entries that name the person
    container_ids: list  # of `containers`, to remove each once
    collected: int  # assignments of which the portal keeps a collected copy of theirs

    def json(self):
        return {"username": self.user.username, "uuid": self.user.uuid, "pseudonym": self.pseudonym,
                "containers": self.containers, "volumes": self.volumes, "desktops": self.desktops,
                "sessions": self.sessions, "events": self.events, "collected": self.collected}

    def lines(self):
        """What goes, one line each, for the operator."""
        return (["container %s" % name for name in self.containers]
                + ["home volume %s (with every file in it)" % name for name in self.volumes]
                + ["desktop %s" % name for name in self.desktops]
                + (["their collected work of %d assignments" % self.collected] if self.collected else [])
                + ["%d sessions, the account row of %s (%s)" % (self.sessions, self.user.username, self.user.uuid),
                   "%d audit log entries: %s becomes %s" % (self.events, self.user.username, self.pseudonym)])


def pseudonym(secret_key, uuid):
    return "person-" + hmac.new(secret_key.encode(), uuid.encode(), hashlib.sha256).hexdigest()[:10]


def find(identifier):
    """The User with this uuid, or the newest holder of this account name; NotFound."""
    user = db.User.get_or_none(db.User.uuid == identifier)
    if user is None:
        user = (db.User.select().where(db.User.username == identifier.strip().lower())
                .order_by(db.User.created_at.desc()).first())
    if user is None:
        raise NotFound("Nobody with the account name or uuid %s has signed in here." % identifier[:80])
    return user


def _names_person(value, username):
    return isinstance(value, str) and (value == username or value.startswith(username + "-"))


def _replaced(value, username, alias):
    """`value` (an audit field: text, or JSON values) with the person's names replaced."""
    if isinstance(value, str):
        return alias + value[len(username):] if _names_person(value, username) else value
    if isinstance(value, list):
        return [_replaced(item, username, alias) for item in value]
    if isinstance(value, dict):
        return {key: _replaced(item, username, alias) for key, item in value.items()}
    return value


def _mentions(event, username):
    def inside(value):
        if isinstance(value, list):
            return any(inside(item) for item in value)
        if isinstance(value, dict):
            return any(inside(item) for item in value.values())
        return _names_person(value, username)
    return _names_person(event.actor, username) or _names_person(event.target, username) or inside(event.detail)


def plan(desktops, user, secret_key):
    """What forgetting `user` removes (reads only)."""
    rows = list(db.Desktop.select().where(db.Desktop.user == user))
    containers = {container.id: container.name for container in desktops.engine.list(desktops.labels)
                  if container.labels.get(OWNER) == user.uuid}
    for row in rows:  # also a container of an older release, made before the owner label
        if row.container_id and row.container_id not in containers:
            container = desktops.engine.inspect(row.container_id)
            if container is not None:
                containers[container.id] = container.name
    volumes = {volume.name for volume in desktops.engine.homes(desktops.homes.prefix)
               if volume.labels.get(OWNER) == user.uuid}
    for row in rows:
        volume = row.home_volume or desktops.homes.plain_name(row.name)
        found = desktops.engine.home(volume)
        if found is not None and found.labels.get(OWNER) in (None, user.uuid):
            volumes.add(volume)
    events = sum(1 for event in db.Event.select() if _mentions(event, user.username))
    return Plan(user, pseudonym(secret_key, user.uuid), sorted(containers.values()), sorted(volumes),
                sorted(row.name for row in rows), db.Session.select().where(db.Session.user == user).count(), events,
                sorted(containers), len(handouts.collected_of(files_dir_of(desktops.config), user)))


def forget(desktops, user, secret_key, actor, dry_run=False):
    """Forget `user` (see the module's text); returns the Plan (with dry_run: only that).
    Containers first (a volume in use cannot go), then volumes, then the rows."""
    what = plan(desktops, user, secret_key)
    if dry_run:
        return what
    for container_id in what.container_ids:
        desktops.engine.remove(container_id)
    for volume in what.volumes:
        desktops.engine.remove_home(volume)
    handouts.forget_person(files_dir_of(desktops.config), user)
    username, alias = user.username, what.pseudonym
    with db.write(desktops.database):
        for event in db.Event.select():
            if _mentions(event, username):
                event.actor = _replaced(event.actor, username, alias)
                event.target = _replaced(event.target, username, alias)
                event.detail = _replaced(event.detail, username, alias)
                event.save()
        db.Preparation.update(created_by=alias).where(db.Preparation.created_by == username).execute()
        db.Handout.update(created_by=alias).where(db.Handout.created_by == username).execute()
        db.HomeSize.delete().where(db.HomeSize.volume.in_(what.volumes)).execute()
        db.Session.delete().where(db.Session.user == user).execute()
        db.Desktop.delete().where(db.Desktop.user == user).execute()
        db.User.delete().where(db.User.id == user.id).execute()
        db.record("person.forget", actor=actor, target=alias, containers=len(what.containers),
                  volumes=len(what.volumes), desktops=len(what.desktops), events=what.events)
    log.warning("forgot a person (now %s): %d containers, %d home volumes, %d desktops, %d sessions removed; "
                "%d audit entries pseudonymised", alias, len(what.containers), len(what.volumes),
                len(what.desktops), what.sessions, what.events)
    return what
