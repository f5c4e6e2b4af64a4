"""The classroom: which IServ groups are classes, who sees which class, who watches whom.

A class is an IServ group whose account name matches CLASS_GROUPS (glob patterns; empty:
every group). Its members are the people iservdesk knows from their sign-ins (IServ's
OpenID Connect does not list group members), keyed by uuid; membership is what the last
sign-in said. A teacher sees the classes they are a member of, an admin every class, a
student none. With CLASSROOM_WATCH a teacher may watch a member's desktop, view only
(web/desktop.py connects as KasmVNC's view-only user), and sees thumbnails of the class's
screens on the class page; every watch and every look at thumbnails is audited with who,
whom and when, and the student sees both while they last, and watches for 30 days after.
A teacher may also show their own running desktop to one class ("Show my screen"): its
members (and nobody else) get the same view-only viewer of it until the teacher ends the
demo, signs out, or the desktop stops; then every viewer of it is closed. Watches and
demos live in this process only: a restart of the portal closes their connections anyway.
The pages and routes are web/classroom.py's.
"""

import collections
import dataclasses
import datetime
import fnmatch
import logging
import socket

from . import db
from .desktops import Status

log = logging.getLogger(__name__)

HISTORY = datetime.timedelta(days=30)
# A class page asks for its thumbnails every few seconds: a teacher counts as looking at a
# student's screen until LOOKING_GAP passes without one; after that, a new look begins.
LOOKING_GAP = datetime.timedelta(seconds=20)


@dataclasses.dataclass(frozen=True)
class Watch:
    """One open view-only connection of `watcher` to the desktop `desktop` of `owner_id`."""

    watcher: str  # the watcher's display name (what the student reads)
    watcher_username: str
    desktop: str
    owner_id: int
    # Not part of what a watch is: a second tab (or a reconnect) of the same watcher joins it.
    since: datetime.datetime = dataclasses.field(compare=False)


@dataclasses.dataclass(eq=False)
class Demo:
    """A teacher's running desktop `desktop`, shown view only to the members of `group`."""

    teacher_id: int
    teacher: str  # the teacher's display name (what the class reads)
    teacher_username: str
    desktop: str
    group: str
    since: datetime.datetime
    sockets: set = dataclasses.field(default_factory=set)  # the members' open viewers

    def json(self):
        return {"teacher": self.teacher, "desktop": self.desktop, "group": self.group,
                "group_name": group_name(self.group), "since": self.since.isoformat()}


def group_name(group):
    """The name IServ shows for `group` ("Klasse 7a"), else its account name."""
    return db.Group.names([group]).get(group, group)


class Classroom:
    """Classes and watches of one portal. `policy` is the sessions.Policy (roles)."""

    def __init__(self, config, policy, clock, bus):
        self.patterns = config.class_groups
        self.watch_allowed = config.classroom_watch
        self.policy = policy
        self.clock = clock
        self.bus = bus
        self.open = collections.Counter()  # Watch -> open connections (a viewer may reconnect)
        self.looks = {}  # Watch -> when its last thumbnail was fetched (class pages open)
        self.demos = {}  # teacher's user id -> Demo (one class at a time)
        self.database = None  # set by follow(): where a demo ended by a stop is audited

    def is_class(self, group):
        """Whether `group` is a class: it matches CLASS_GROUPS (empty: any group), and it is
        not one of the groups that make teachers or admins (ROLE_TEACHER, ROLE_ADMIN)."""
        group = group.lower()
        if group in self.policy.teacher_names or group in self.policy.admin_names:
            return False
        return not self.patterns or any(fnmatch.fnmatchcase(group, pattern) for pattern in self.patterns)

    def classes_of(self, identity):
        """The class names `identity` may see: their own classes for teachers, every class
        someone signed in with for admins, none for anyone else; sorted."""
        if identity.is_admin:
            groups = {group for user in db.User.select(db.User.groups) for group in user.groups}
        elif identity.is_teacher:
            groups = set(identity.user.groups)
        else:
            return []
        return sorted(group for group in groups if self.is_class(group))

    def may_see(self, identity, group):
        return group.lower() in self.classes_of(identity)

    def members(self, group):
        """The people iservdesk knows in `group` (from their last sign-in), by name; the
        teachers of the class are not its members' business here, so they are left out."""
        people = db.User.select().order_by(db.User.display_name, db.User.username)
        return [user for user in people if self.is_member(user, group)]

    def is_member(self, user, group):
        """Whether `user` is a member of class `group` as members() counts them."""
        return (group.lower() in user.groups and not self.policy.is_teacher(user)
                and not self.policy.is_admin(user))

    def may_watch(self, identity, owner):
        """True when `identity` (a teacher) may watch a desktop of `owner`: watching is on
        and `owner` is a member of one of the classes the teacher sees. Admins are governed
        by ADMIN_DESKTOP_ACCESS instead."""
        if not self.watch_allowed or not identity.is_teacher or identity.user.id == owner.id:
            return False
        if self.policy.is_teacher(owner) or self.policy.is_admin(owner):
            return False  # colleagues are nobody's class
        classes = set(self.classes_of(identity))
        return bool(classes & set(owner.groups))

    # -- watches: opened and closed by web/desktop.py's WebSocket relay --

    def started(self, identity, row):
        """A watcher's connection to `row` (a Desktop with .user) opened: audited, and its
        owner told at once. Returns the Watch, to pass to ended()."""
        watch = Watch(identity.user.display_name or identity.user.username, identity.user.username,
                      row.name, row.user_id, self.clock())
        self.open[watch] += 1
        if self.open[watch] == 1:
            db.record("class.watch.start", actor=identity.user.username, target=row.name,
                      owner=row.user.username)
            self._tell(watch.owner_id)
        return watch

    def ended(self, watch):
        self.open[watch] -= 1
        if self.open[watch] <= 0:
            del self.open[watch]
            db.record("class.watch.end", actor=watch.watcher_username, target=watch.desktop)
            self._tell(watch.owner_id)

    def looked(self, identity, row):
        """A thumbnail of `row` (a Desktop with .user) was fetched for `identity`'s class page.
        A look that begins (none for LOOKING_GAP) is audited and its owner told at once."""
        now = self.clock()
        watch = Watch(identity.user.display_name or identity.user.username, identity.user.username,
                      row.name, row.user_id, now)
        last = self.looks.get(watch)
        if last is None or now - last > LOOKING_GAP:
            self.looks.pop(watch, None)  # the key keeps its first `since`: a new look, a new key
            db.record("class.thumbnails", actor=identity.user.username, target=row.name,
                      owner=row.user.username)
            self.looks[watch] = now
            self._tell(watch.owner_id)
        else:
            self.looks[watch] = now

    def _tell(self, owner_id):
        self.bus.publish({"owner": owner_id, "watch": True})

    def watching(self, user):
        """What `user` may know about being watched: {"now": [...], "history": [...]}: the
        watches of their desktops open now ("kind": "watch") and the class pages that show a
        thumbnail of them now ("kind": "thumbnail"), and the watches of the last 30 days
        (newest first). Thumbnail looks are in the audit log (class.thumbnails), not here."""
        moment = self.clock()
        for watch, last in list(self.looks.items()):
            if moment - last > LOOKING_GAP:
                del self.looks[watch]
        now = [{"watcher": watch.watcher, "desktop": watch.desktop, "since": watch.since.isoformat(),
                "kind": kind}
               for kind, watches in (("watch", self.open), ("thumbnail", self.looks))
               for watch in sorted(watches, key=lambda watch: watch.since) if watch.owner_id == user.id]
        desktops = {row.name for row in db.Desktop.select(db.Desktop.name).where(db.Desktop.user == user)}
        names = {}
        events = (db.Event.select().where((db.Event.action.in_(["class.watch.start", "class.watch.end"]))
                                          & (db.Event.target.in_(list(desktops)))
                                          & (db.Event.at >= self.clock() - HISTORY))
                  .order_by(db.Event.at))
        history, open_ = [], {}
        for event in events:
            key = (event.actor, event.target)
            if event.action == "class.watch.start":
                open_[key] = {"watcher": event.actor, "desktop": event.target,
                              "started_at": event.at.isoformat(), "ended_at": None}
                history.append(open_[key])
            elif key in open_:
                open_.pop(key)["ended_at"] = event.at.isoformat()
        for user_row in db.User.select().where(db.User.username.in_([item["watcher"] for item in history])):
            names[user_row.username] = user_row.display_name or user_row.username
        for item in history:
            item["watcher"] = names.get(item["watcher"], item["watcher"])
        return {"now": now, "history": list(reversed(history))}

    # -- demos ("Show my screen") --

    def follow(self, bus, database):
        """End a demo as soon as its desktop is no longer running: `bus` carries every
        desktop change (desktops/lifecycle.py, reconcile.py). The audit entry joins the
        publisher's transaction when it has one (a savepoint), else gets its own."""
        self.database = database
        bus.listen(self._desktop_changed)

    def _desktop_changed(self, event):
        view = event.get("view")
        if view is None:
            return
        for demo in list(self.demos.values()):
            if demo.desktop == view["name"] and view["status"] != Status.RUNNING:
                with db.write(self.database):
                    self.end_demo(demo.teacher_id, "desktop " + view["status"], only=demo)

    def start_demo(self, identity, group, row):
        """Show `row` (the teacher's own running desktop) to the members of `group`, which
        the teacher sees; a demo they were giving to another class ends first. Audited."""
        self.end_demo(identity.user.id, "another demo began")
        demo = Demo(identity.user.id, identity.user.display_name or identity.user.username,
                    identity.user.username, row.name, group.lower(), self.clock())
        self.demos[identity.user.id] = demo
        db.record("class.demo.start", actor=identity.user.username, target=demo.group, desktop=row.name)
        log.info("%s shows the desktop %s to class %s", identity.user.username, row.name, demo.group)
        self.bus.publish({"demo": demo.group})
        return demo

    def end_demo(self, teacher_id, reason, only=None):
        """End the demo of the teacher with this user id (if any; with `only`: if it is
        still that one): audited with `reason`, and every member's viewer of it closed at
        once. Returns the ended Demo or None."""
        demo = self.demos.get(teacher_id)
        if demo is None or only is not None and demo is not only:
            return None
        del self.demos[teacher_id]
        db.record("class.demo.end", actor=demo.teacher_username, target=demo.group, desktop=demo.desktop,
                  reason=reason, viewers=len(demo.sockets))
        log.info("the demo of %s to class %s ended (%s)", demo.teacher_username, demo.group, reason)
        for sock in list(demo.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.bus.publish({"demo": demo.group})
        return demo

    def demo_of(self, identity, row):
        """The Demo through which `identity` may see desktop `row`, or None: someone else's
        desktop that is shown to a class `identity` is a member of."""
        for demo in self.demos.values():
            if (demo.desktop == row.name and demo.teacher_id == row.user_id != identity.user.id
                    and self.is_member(identity.user, demo.group)):
                return demo
        return None

    def demos_for(self, user):
        """The demos shown to `user` now (as members of their classes), oldest first."""
        return [demo for demo in sorted(self.demos.values(), key=lambda demo: demo.since)
                if self.is_member(user, demo.group)]

    def demo_by(self, user):
        """The demo `user` gives now, or None."""
        return self.demos.get(user.id)
