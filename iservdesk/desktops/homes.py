"""Whose home a desktop mounts, and what new desktops are called.

Desktops belong to a person, not to a name: rows, containers and home volumes are keyed on
(and labelled with, de.iservdesk.owner) the user's uuid. IServ may hand an account name
on to a new person; that person gets desktops and homes of their own (named with a short
id of their uuid where the plain name is taken), never the predecessor's, whose home
volumes are kept and listed for the admin (listing()).
"""

import hashlib
import logging

from .. import db
from ..errors import HomeTaken
from . import OWNER, USER

log = logging.getLogger(__name__)


def desktop_name(username, slug):
    return "%s-%s" % (username, slug)


def short_id(uuid):
    """Eight hex digits that stand for a user's uuid in names: stable, and unlike the account
    name never handed on to someone else."""
    return hashlib.sha256(uuid.encode()).hexdigest()[:8]


def free_name(user, slug, taken):
    """The name for a new desktop of `user` and type `slug`, or None when none is free.
    `taken(name)` says whether a row of that name exists.

    <username>-<type>, unless a row of someone else has that name: IServ handed the account
    name on (the predecessor's desktop keeps its name, its container and its files), and
    the new person gets <username>-<type>-<short id of their uuid>.
    """
    base = desktop_name(user.username, slug)
    for name in (base, "%s-%s" % (base, short_id(user.uuid))):
        if not taken(name):
            if name != base:
                log.warning("desktop name %s belongs to another account; %s (%s) gets %s",
                            base, user.username, user.uuid, name)
            return name
    return None


def owned_by(container, user):
    """True when the container is labelled as `user`'s (by uuid, never by name)."""
    return container.labels.get(OWNER) == user.uuid


class Homes:
    """The home volumes of one installation (their names start with <CONTAINER_PREFIX>-home-)."""

    def __init__(self, engine, database, prefix):
        self.engine = engine
        self.database = database
        self.prefix = prefix + "-home-"

    def plain_name(self, desktop):
        return self.prefix + desktop

    def choose(self, row, labels):
        """The name of the volume to mount as the home of `row`'s owner: made (with `labels`,
        which carry the owner's uuid) when missing, and recorded in the row.

        A volume whose owner label names someone else is never mounted: the row gets a
        fresh home under another name (<home>-<short id of the uuid>) and the other person's
        volume stays as it is, listed by listing(). The row's recorded volume comes first,
        then the plain name, then that fresh one; a later start finds the same volume again.
        The owner label decides, not the installation label: after a database reset (a new
        installation id) a person's home is still theirs.

        Volumes without an owner label were made by hand or by a release before labels
        (Docker cannot add a label to an existing volume). Such a volume is taken only by
        the row that already had it: the one of that name that ran before this release
        recorded volumes (started_at set, home_volume not yet), which is whom an older
        release mounted it for. A new row, and so a new person with a recycled name, gets
        a fresh home instead; the choice is recorded in the row, in place of the label.
        Raises HomeTaken when every candidate is someone else's.
        """
        owner = row.user.uuid
        plain = self.plain_name(row.name)
        candidates = [row.home_volume] if row.home_volume else []
        candidates += [name for name in (plain, "%s-%s" % (plain, short_id(owner))) if name not in candidates]
        for name in candidates:
            volume = self.engine.home(name) or self.engine.create_home(name, labels)
            labelled = volume.labels.get(OWNER)
            if labelled == owner or (labelled is None and name == row.home_volume):
                pass  # theirs, or adopted before (see above)
            elif labelled is None and name == plain and row.home_volume is None and row.started_at:
                log.warning("home volume %s has no owner label (an older release); it stays the home "
                            "of %s (%s), who used it", name, row.name, owner)
            else:
                log.warning("home volume %s belongs to %s, not to %s (%s) of desktop %s: not mounted, "
                            "kept", name, labelled or "an unknown owner", row.user.username, owner, row.name)
                continue
            if row.home_volume != name:
                with db.write(self.database):
                    db.Desktop.update(home_volume=name).where(db.Desktop.id == row.id).execute()
                row.home_volume = name
            return name
        log.error("no home volume for desktop %s of %s (%s): %s all belong to others", row.name,
                  row.user.username, owner, ", ".join(candidates))
        raise HomeTaken()

    def listing(self):
        """Every home volume of this installation, for the admin: a list of dicts with name,
        created_at, owner (uuid, or None), username and display_name (from the users table,
        else the volume's label), owner_known (the uuid has signed in here), desktop (the
        owner's desktop that mounts it), username_reused (the owner's account name has since
        signed in with another uuid) and status: in_use (its owner's desktop mounts it, and
        the name is still theirs) or kept (nobody's desktop does; the files stay until an
        admin removes the volume), size and size_measured_at (bytes, as last measured by the file
        browser, an upload or cleanup; None before). Raises DesktopError (engine down)."""
        volumes = self.engine.homes(self.prefix)
        users = {user.uuid: user for user in db.User.select()}
        latest = {}  # account name -> the account that signed in with it last
        for user in users.values():
            held = latest.get(user.username)
            if held is None or _signed_in_at(user) > _signed_in_at(held):
                latest[user.username] = user
        rows = list(db.Desktop.select(db.Desktop, db.User).join(db.User))
        mounting = {row.home_volume: row for row in rows if row.home_volume}
        # Rows of older releases record no volume yet: theirs is the one of their name.
        mounting.update({self.plain_name(row.name): row for row in rows
                         if not row.home_volume and self.plain_name(row.name) not in mounting})
        sizes = {size.volume: size for size in db.HomeSize.select()}
        homes = []
        for volume in volumes:
            owner = volume.labels.get(OWNER)
            size = sizes.get(volume.name)
            row = mounting.get(volume.name)
            if row is not None and owner not in (None, row.user.uuid):
                row = None  # named like that desktop's home, but another person's
            owner = owner or (row.user.uuid if row is not None else None)
            user = users.get(owner)
            reused = user is not None and latest[user.username].uuid != user.uuid
            homes.append({
                "name": volume.name, "created_at": volume.created_at or None, "owner": owner,
                "username": user.username if user else volume.labels.get(USER),
                "display_name": user.display_name if user else "",
                "owner_known": user is not None, "desktop": row.name if row is not None else None,
                "username_reused": reused,
                "size": size.size if size else None,
                "size_measured_at": size.measured_at.isoformat() if size else None,
                "status": "in_use" if row is not None and not reused else "kept"})
        return homes


def _signed_in_at(user):
    return user.last_login_at or user.created_at
