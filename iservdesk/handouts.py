"""Handing out and collecting: what a teacher gives a class and takes back in.

Material: the teacher uploads files under a name; "hand out" copies them into
~/Material/<class>/<name>/ of every home of every member of the class (running desktops
and stopped ones alike), owned by root and read-only (0444 in a 0555 folder: Kasm images
run their user as uid 1000 without sudo, so the student reads but cannot change them;
their own copy is theirs to edit). Handing out again under the same name adds and
replaces files.

Assignments: the teacher names one; ~/Abgabe/<name>/ is made, writable, in every member's
home. "Einsammeln" (collect) copies each member's folder, regular files and folders only,
into the portal's files (next to the database) and keeps the newest state per student; the
teacher downloads one zip with a folder per student (<Nachname>_<Vorname>/) and a list of
who handed in nothing. An optional deadline collects by itself.

A member who signs in (or starts a desktop type) later gets what is missing at the start
of their desktop: Desktops calls deliver_pending() once the home is chosen. Deliveries are
recorded per home volume. Everything is audited (class.material, class.assignment,
class.collect); forget.py removes a person's collected copies.
"""

import json
import logging
import os
import secrets
import shutil
import tarfile
import zipfile

import gevent
import gevent.pool

from . import background, db
from .classroom import group_name
from .errors import BadRequest, Conflict, IServDeskError, NotFound
from .files import (TAR_END, BodyEnded, Files, TooLarge, _ChunkReader, _copied, _Sink, body_chunks, check_name,
                    display, homes_of, human, tar_header, tar_padding)

log = logging.getLogger(__name__)

MATERIAL, ASSIGNMENT = "material", "assignment"
MATERIAL_FOLDER, ASSIGNMENT_FOLDER = "Material", "Abgabe"
# Homes written or read at once when a class is handed out to or collected from.
PARALLEL = 4
CHECK_EVERY = 15  # seconds between looks for deadlines that have come


def folder_name(user):
    """<Nachname>_<Vorname> from IServ's name ("Anna Schmidt" -> "Schmidt_Anna")."""
    words = (user.display_name or user.username).split()
    name = "_".join(words[-1:] + words[:-1]) if len(words) > 1 else (words[0] if words else user.username)
    name = "".join(c if c.isprintable() and c not in '/\\:*?"<>|' else "_" for c in name).strip(". ")
    return name or user.username


class Handouts:
    """The material and assignments of every class. `files_dir`: where uploaded material and
    collected copies live (a folder of the portal's own, beside the database)."""

    def __init__(self, desktops, classroom, files_dir, database, clock, upload_max):
        self.desktops = desktops
        self.engine = desktops.engine
        self.classroom = classroom
        self.files_dir = files_dir
        self.database = database
        self.clock = clock
        self.upload_max = upload_max
        self.loop = None

    # -- where things are on the portal's disk --

    def material_dir(self, handout):
        return os.path.join(self.files_dir, "material", str(handout.id))

    def collected_dir(self, handout):
        return os.path.join(self.files_dir, "collected", str(handout.id))

    def find(self, group, handout_id, kind=None):
        handout = db.Handout.get_or_none((db.Handout.id == handout_id) & (db.Handout.group_name == group))
        if handout is None or (kind is not None and handout.kind != kind):
            raise NotFound("There is no such material or assignment in this class.", code="no_handout")
        return handout

    # -- material --

    def material(self, teacher, group, name):
        """The material `name` of `group`, made when new (files still to come)."""
        check_name(name, "name")
        handout = db.Handout.get_or_none((db.Handout.group_name == group) & (db.Handout.kind == MATERIAL)
                                         & (db.Handout.name == name))
        if handout is None:
            with db.write(self.database):
                handout = db.Handout.create(group_name=group, kind=MATERIAL, name=name,
                                            created_by=teacher.username, created_at=self.clock())
        return handout

    def add_file(self, handout, filename, length, read):
        """Store `length` bytes from `read(n)` as `filename` of the material; streamed to a
        temporary file and renamed when complete."""
        check_name(filename, "file name")
        if length > self.upload_max:
            raise TooLarge("%s is %s; a file may have at most %s here." % (
                filename, human(length), human(self.upload_max)), code="file_too_large")
        folder = self.material_dir(handout)
        os.makedirs(folder, exist_ok=True)
        temporary = os.path.join(folder, ".upload-" + secrets.token_hex(8))
        try:
            with open(temporary, "wb") as target:
                for chunk in body_chunks(read, length):
                    target.write(chunk)
            os.replace(temporary, os.path.join(folder, filename))
        except BodyEnded:
            raise BadRequest("The upload of %s broke off; nothing was changed." % filename,
                             code="upload_incomplete") from None
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        return {"name": filename, "size": length}

    def material_files(self, handout):
        folder = self.material_dir(handout)
        names = sorted(name for name in os.listdir(folder) if not name.startswith(".upload-")) if os.path.isdir(
            folder) else []
        return [{"name": name, "size": os.path.getsize(os.path.join(folder, name))} for name in names]

    def hand_out(self, teacher, handout):
        """Copy the material into every member's homes (again: adds and replaces). Audited."""
        if not self.material_files(handout):
            raise Conflict("Add at least one file before handing out.", code="no_files")
        with db.write(self.database):
            db.Handout.update(handed_out_at=self.clock()).where(db.Handout.id == handout.id).execute()
            db.Delivery.delete().where(db.Delivery.handout == handout.id).execute()  # everyone gets the new state
        handout = db.Handout.get_by_id(handout.id)
        result = self._deliver_to_class(handout)
        with db.write(self.database):
            db.record("class.material", actor=teacher.username, target=handout.group_name, name=handout.name,
                      files=[item["name"] for item in self.material_files(handout)], homes=result["homes"],
                      failed=result["failed"])
        log.info("%s handed out %r to class %s: %d homes", teacher.username, handout.name, handout.group_name,
                 result["homes"])
        return result

    # -- assignments --

    def assign(self, teacher, group, name, deadline=None):
        """Give the class the assignment `name`: ~/Abgabe/<name>/ in every member's homes."""
        check_name(name, "name")
        now = self.clock()
        if deadline is not None and deadline <= now:
            raise BadRequest("The deadline has passed already.", code="deadline_past")
        with db.write(self.database):
            handout = db.Handout.get_or_none((db.Handout.group_name == group) & (db.Handout.kind == ASSIGNMENT)
                                             & (db.Handout.name == name))
            if handout is not None:
                raise Conflict("This class has an assignment called %s already." % name, code="name_taken")
            handout = db.Handout.create(group_name=group, kind=ASSIGNMENT, name=name, created_by=teacher.username,
                                        created_at=now, handed_out_at=now, deadline=deadline)
        result = self._deliver_to_class(handout)
        with db.write(self.database):
            db.record("class.assignment", actor=teacher.username, target=group, name=name,
                      deadline=deadline.isoformat() if deadline else None, homes=result["homes"])
        return handout

    def collect(self, actor, handout):
        """Copy every member's ~/Abgabe/<name>/ (of each of their homes) to the portal, the
        newest state replacing the last. Audited. Returns the collection's summary."""
        now = self.clock()
        members = self.classroom.members(handout.group_name)
        work = [(user, slug, volume, image) for user in members
                for slug, volume, image in homes_of(self.desktops, user)]
        folder = self.collected_dir(handout)
        os.makedirs(folder, exist_ok=True)
        results = gevent.pool.Pool(PARALLEL).map(lambda item: self._collect_one(handout, folder, *item), work)
        counts = {}
        for (user, _, _, _), (files, size) in zip(work, results):
            total = counts.setdefault(user.uuid, [0, 0])
            total[0] += files
            total[1] += size
        summary = {"collected_at": now.isoformat(), "members": [
            {"uuid": user.uuid, "username": user.username, "name": user.display_name or user.username,
             "folder": folder_name(user), "files": counts.get(user.uuid, [0, 0])[0],
             "bytes": counts.get(user.uuid, [0, 0])[1]} for user in members]}
        # Copies of people who are no members any more go.
        kept = {user.uuid for user in members}
        for entry in os.listdir(folder):
            if entry != "collection.json" and entry not in kept:
                shutil.rmtree(os.path.join(folder, entry), ignore_errors=True)
        with open(os.path.join(folder, "collection.json.new"), "w") as out:
            json.dump(summary, out)
        os.replace(os.path.join(folder, "collection.json.new"), os.path.join(folder, "collection.json"))
        with db.write(self.database):
            db.Handout.update(collected_at=now).where(db.Handout.id == handout.id).execute()
            db.record("class.collect", actor=actor, target=handout.group_name, name=handout.name,
                      handed_in=sum(1 for item in summary["members"] if item["files"]),
                      nothing=[item["username"] for item in summary["members"] if not item["files"]])
        return summary

    def _collect_one(self, handout, folder, user, slug, volume, image):
        """Copy one home's ~/Abgabe/<name>/ to <folder>/<uuid>/<type>/: (files, bytes)."""
        target = os.path.join(folder, user.uuid, slug)
        fresh = target + ".new"
        shutil.rmtree(fresh, ignore_errors=True)
        os.makedirs(fresh)
        files = size = 0
        try:
            with self.engine.open_home(volume, image, self.desktops.labels) as home:
                found, _ = Files.walk(home, [ASSIGNMENT_FOLDER, handout.name])
                if found is not None and found.kind == "folder":
                    with tarfile.open(fileobj=_ChunkReader(home.read(ASSIGNMENT_FOLDER + "/" + handout.name)),
                                      mode="r|") as tar:
                        for member in tar:
                            parts = member.name.split("/")[1:]
                            try:
                                parts = [check_name(part) for part in parts]
                            except BadRequest:
                                continue
                            if not parts:
                                continue
                            path = os.path.join(fresh, *parts)
                            if member.isdir():
                                os.makedirs(path, exist_ok=True)
                            elif member.isfile():
                                os.makedirs(os.path.dirname(path), exist_ok=True)
                                with open(path, "wb") as out:
                                    for chunk in _copied(tar.extractfile(member)):
                                        out.write(chunk)
                                files += 1
                                size += member.size
        except BadRequest:
            pass  # ~/Abgabe or the folder is a link: nothing handed in
        except IServDeskError as error:
            log.warning("collecting %r from %s failed: %s", handout.name, volume, error.detail)
            shutil.rmtree(fresh, ignore_errors=True)
            return 0, 0  # the last collected state, if any, stays
        shutil.rmtree(target, ignore_errors=True)
        os.replace(fresh, target)
        return files, size

    def collection(self, handout):
        """The last collection's summary, or None."""
        try:
            with open(os.path.join(self.collected_dir(handout), "collection.json")) as source:
                return json.load(source)
        except FileNotFoundError:
            return None

    def collection_zip(self, handout):
        """Yield the bytes of one zip: a folder per student who handed in something
        (<Nachname>_<Vorname>/, and a folder per desktop type where they used several), and
        Abgabe.txt: when it was collected, who handed in what and who nothing."""
        summary = self.collection(handout)
        if summary is None:
            raise Conflict("Collect first: nothing has been collected yet.", code="not_collected")
        root = self.collected_dir(handout)
        sink = _Sink()
        taken = set()
        lines_in, lines_nothing = [], []
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for member in sorted(summary["members"], key=lambda item: item["folder"].lower()):
                label = "%s (%s)" % (member["name"], member["username"])
                if not member["files"]:
                    lines_nothing.append("  " + label)
                    continue
                lines_in.append("  %s: %d, %s" % (label, member["files"], human(member["bytes"])))
                name = member["folder"]
                if name.lower() in taken:
                    name = "%s_%s" % (name, member["username"])
                taken.add(name.lower())
                base = os.path.join(root, member["uuid"])
                types = sorted(entry for entry in os.listdir(base) if not entry.endswith(".new")) if os.path.isdir(
                    base) else []
                used = [slug for slug in types if os.listdir(os.path.join(base, slug))]
                for slug in used:
                    prefix = name if len(used) == 1 else name + "/" + slug
                    for folder, folders, files in os.walk(os.path.join(base, slug)):
                        folders.sort()
                        relative = os.path.relpath(folder, os.path.join(base, slug))
                        inside = prefix if relative == "." else prefix + "/" + relative
                        for filename in sorted(files):
                            info = zipfile.ZipInfo.from_file(os.path.join(folder, filename),
                                                             display(inside + "/" + filename))
                            with open(os.path.join(folder, filename), "rb") as source, \
                                    archive.open(info, "w", force_zip64=True) as target:
                                for chunk in _copied(source):
                                    target.write(chunk)
                                    yield sink.take()
            text = ["%s \"%s\" – %s" % ("Abgabe / assignment", handout.name, group_name(handout.group_name)),
                    "Eingesammelt / collected: %s" % summary["collected_at"],
                    "", "Abgegeben / handed in (Dateien / files, Größe / size): %d" % len(lines_in)] + lines_in + [
                    "", "Nichts abgegeben / nothing handed in: %d" % len(lines_nothing)] + lines_nothing
            archive.writestr("Abgabe.txt", "\n".join(text) + "\n")
        yield sink.take()

    def remove(self, actor, handout):
        """Forget a handout: its stored files and collected copies (the homes keep theirs)."""
        shutil.rmtree(self.material_dir(handout), ignore_errors=True)
        shutil.rmtree(self.collected_dir(handout), ignore_errors=True)
        with db.write(self.database):
            handout.delete_instance()
            db.record("class.%s.remove" % handout.kind, actor=actor, target=handout.group_name, name=handout.name)

    # -- delivery into homes --

    def _entries(self, handout):
        """The tar stream that puts `handout` into a home (written at the home's top)."""
        group = handout.group_name
        if handout.kind == ASSIGNMENT:
            yield tar_header(ASSIGNMENT_FOLDER, "folder")
            yield tar_header(ASSIGNMENT_FOLDER + "/" + handout.name, "folder")
        else:
            base = "/".join((MATERIAL_FOLDER, group, handout.name))
            yield tar_header(MATERIAL_FOLDER, "folder")
            yield tar_header(MATERIAL_FOLDER + "/" + group, "folder")
            yield tar_header(base, "folder", uid=0, mode=0o555)
            folder = self.material_dir(handout)
            for item in self.material_files(handout):
                yield tar_header(base + "/" + item["name"], "file", item["size"], uid=0, mode=0o444)
                with open(os.path.join(folder, item["name"]), "rb") as source:
                    sent = 0
                    for chunk in _copied(source):
                        sent += len(chunk)
                        yield chunk
                if sent != item["size"]:
                    raise IServDeskError(detail="material file %s changed while it was handed out" % item["name"])
                yield tar_padding(item["size"])
        yield TAR_END

    def _put(self, handout, volume, image):
        """Put `handout` into one home. False (logged) when the engine failed."""
        try:
            with self.engine.open_home(volume, image, self.desktops.labels, writable=True) as home:
                home.write("", self._entries(handout))
        except IServDeskError as error:
            log.warning("could not put %s %r into home %s: %s", handout.kind, handout.name, volume, error.detail)
            return False
        return True

    def _record(self, handout, delivered):
        """Record deliveries [(user, volume)] of `handout` (in this greenlet: one connection)."""
        now = self.clock()
        with db.write(self.database):
            for user, volume in delivered:
                db.Delivery.insert(handout=handout.id, user=user.id, volume=volume, delivered_at=now).on_conflict(
                    conflict_target=[db.Delivery.handout, db.Delivery.volume],
                    update={db.Delivery.delivered_at: now}).execute()

    def _deliver_to_class(self, handout):
        work = [(user, volume, image) for user in self.classroom.members(handout.group_name)
                for _, volume, image in homes_of(self.desktops, user)]
        done = gevent.pool.Pool(PARALLEL).map(lambda item: self._put(handout, item[1], item[2]), work)
        self._record(handout, [(user, volume) for (user, volume, _), ok in zip(work, done) if ok])
        return {"homes": sum(done), "failed": [volume for (_, volume, _), ok in zip(work, done) if not ok]}

    def deliver_pending(self, row, volume, image):
        """What `row`'s owner lacks in the home `volume` (their desktop is starting): every
        handed-out material and open assignment of their classes not delivered there yet."""
        user = row.user
        groups = [group for group in user.groups if self.classroom.is_member(user, group)]
        if not groups:
            return
        delivered = db.Delivery.select(db.Delivery.handout).where(db.Delivery.volume == volume)
        pending = (db.Handout.select().where(db.Handout.group_name.in_(groups)
                                             & db.Handout.handed_out_at.is_null(False)
                                             & db.Handout.id.not_in(delivered)))
        for handout in pending:
            if self._put(handout, volume, image):
                self._record(handout, [(user, volume)])
                log.info("%s %r of class %s put into the new home of %s", handout.kind, handout.name,
                         handout.group_name, row.name)

    # -- for the class page --

    def listing(self, group):
        """The class's material and assignments, newest first, as plain values."""
        members = self.classroom.members(group)
        result = []
        for handout in db.Handout.select().where(db.Handout.group_name == group).order_by(db.Handout.id.desc()):
            have = {delivery.user_id for delivery in db.Delivery.select(db.Delivery.user).where(
                db.Delivery.handout == handout.id)}
            item = {"id": handout.id, "kind": handout.kind, "name": handout.name, "created_by": handout.created_by,
                    "created_at": handout.created_at.isoformat(),
                    "handed_out_at": handout.handed_out_at.isoformat() if handout.handed_out_at else None,
                    "deadline": handout.deadline.isoformat() if handout.deadline else None,
                    "collected_at": handout.collected_at.isoformat() if handout.collected_at else None,
                    "members": len(members),
                    "have": sorted(user.username for user in members if user.id in have),
                    "missing": sorted(user.username for user in members if user.id not in have),
                    "missing_names": [user.display_name or user.username for user in members if user.id not in have]}
            if handout.kind == MATERIAL:
                item["files"] = self.material_files(handout)
            else:
                summary = self.collection(handout)
                item["handed_in"] = sum(1 for member in summary["members"] if member["files"]) if summary else None
                item["nothing"] = [member["username"] for member in summary["members"]
                                   if not member["files"]] if summary else None
                item["nothing_names"] = [member["name"] for member in summary["members"]
                                         if not member["files"]] if summary else None
            result.append(item)
        return result

    # -- deadlines --

    def run_due(self):
        """Collect every assignment whose deadline has come and that was not collected since."""
        now = self.clock()
        due = db.Handout.select().where((db.Handout.kind == ASSIGNMENT) & (db.Handout.deadline <= now)
                                        & (db.Handout.collected_at.is_null()
                                           | (db.Handout.collected_at < db.Handout.deadline)))
        for handout in list(due):
            log.info("deadline of %r (class %s) has come: collecting", handout.name, handout.group_name)
            self.collect("deadline", handout)

    def run_background(self):
        self.loop = background.every(CHECK_EVERY, self.run_due, self.database, "collecting at deadlines")

    def shutdown(self):
        if self.loop is not None:
            self.loop.kill(block=False)


def collected_of(files_dir, user):
    """The folders of collections that hold something of `user` (a copy or a line)."""
    base = os.path.join(files_dir, "collected")
    found = []
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        folder = os.path.join(base, entry)
        try:
            with open(os.path.join(folder, "collection.json")) as source:
                listed = any(member["uuid"] == user.uuid for member in json.load(source)["members"])
        except FileNotFoundError:
            listed = False
        if listed or os.path.isdir(os.path.join(folder, user.uuid)):
            found.append(folder)
    return found


def forget_person(files_dir, user):
    """Remove `user`'s collected copies (forget.py): their folders and their lines."""
    for folder in collected_of(files_dir, user):
        shutil.rmtree(os.path.join(folder, user.uuid), ignore_errors=True)
        manifest = os.path.join(folder, "collection.json")
        if os.path.exists(manifest):
            with open(manifest) as source:
                summary = json.load(source)
            kept = [member for member in summary["members"] if member["uuid"] != user.uuid]
            if len(kept) != len(summary["members"]):
                summary["members"] = kept
                with open(manifest + ".new", "w") as out:
                    json.dump(summary, out)
                os.replace(manifest + ".new", manifest)


def files_dir_of(config):
    """Where the portal keeps material and collected copies: "files" beside the database."""
    return os.path.join(os.path.dirname(config.database_uri), "files")

