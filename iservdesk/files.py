"""Files in and out of homes: list, download (a file, or a folder as a zip), upload,
delete, sizes and quotas; a home (or all of a person's homes) as one zip, streamed.

The engine reads and writes a home through a container that is never started, with only
that volume mounted (Engine.open_home), so running, stopped and removed desktops are
alike, and whatever a link in a home points to resolves inside that throw-away container,
never on the host or in another home. On top of that, no path given here passes through
a link: every part of it is looked at (lstat) first and a link is refused, and zips carry
regular files and folders only (links, devices and fifos are left out). Names are taken
as they are, except "..", "/", NUL and control characters, which are refused.

Streams both ways: a download is turned from the engine's tar into the answer (or a zip)
while it flows, an upload from the request into the engine's tar, a chunk at a time, so a
file of gigabytes never sits in the portal's memory. An upload that replaces a file goes
to a hidden name first and is renamed when complete, and one that breaks off is removed:
the old file stays as it was.
Zips are Zip64 (files over 4 GiB) and stored without compression: the portal's CPU is
for the desktops, and what homes hold (images, documents, archives) is mostly compressed.
"""

import contextlib
import datetime
import logging
import secrets
import tarfile
import unicodedata
import zipfile

from . import db
from .desktops import OWNER
from .desktops.engine import HOME
from .errors import BadRequest, Conflict, DesktopNotFound, DesktopUnreachable, IServDeskError

log = logging.getLogger(__name__)

UPLOAD_PREFIX = ".iservdesk-upload-"  # an upload's hidden name until it is complete
# One line per entry of a folder (find -printf, NUL-separated: names may hold newlines):
# kind, size, modification time, name. First the home's size in bytes (du, one line).
LIST_SCRIPT = 'du -sxb -- "$1" && find -P "$2" -mindepth 1 -maxdepth 1 -printf "%y\\0%s\\0%T@\\0%f\\0"'
KINDS = {"f": "file", "d": "folder", "l": "link"}
# A home's size measured this recently counts for the quota check of an upload. What its
# desktop writes meanwhile can pass HOME_QUOTA anyway (Docker's volumes have no limit).
MEASURED_FRESH = datetime.timedelta(seconds=30)


COPY_CHUNK = 256 * 1024  # bytes per read of a file inside the tar stream, or of a request body


class TooLarge(IServDeskError):
    status = 413
    code = "too_large"
    public_message = "That is too large."


class _ChunkReader:
    """A file-like reader over an iterator of bytes (what tarfile's stream mode reads)."""

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.buffer = bytearray()

    def read(self, size=-1):
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        if size < 0 or size >= len(self.buffer):
            data = bytes(self.buffer)
            self.buffer.clear()
            return data
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


class _Sink:
    """A write-only, unseekable file that keeps what was written until it is taken."""

    def __init__(self):
        self.parts = []

    def write(self, data):
        self.parts.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def take(self):
        data, self.parts = b"".join(self.parts), []
        return data


def homes_as_zip(homes):
    """Yield the bytes of one zip holding each of `homes`: (folder, tar chunks) pairs, the
    tar's first part ("kasm-user/" for a home, HomeFiles.read) replaced by `folder/`."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for folder, chunks in homes:
            with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as tar:
                for member in tar:
                    parts = member.name.split("/")[1:]  # without "kasm-user"
                    if not parts or any(part in ("", ".", "..") for part in parts):
                        continue
                    name = display("/".join([folder] + parts))
                    moment = datetime.datetime.fromtimestamp(max(member.mtime, 315532800), datetime.timezone.utc)
                    if member.isdir():
                        archive.writestr(zipfile.ZipInfo(name + "/", moment.timetuple()[:6]), b"")
                    elif member.isfile():
                        info = zipfile.ZipInfo(name, moment.timetuple()[:6])
                        info.file_size = member.size
                        with archive.open(info, "w", force_zip64=True) as target:
                            for data in _copied(tar.extractfile(member)):
                                target.write(data)
                                yield sink.take()
                    yield sink.take()
    yield sink.take()


def reader_image(desktops, slug):
    """An image on the host to read and write a home of desktop type `slug` with: the type's
    own, else any of the catalog's that is there (DesktopUnreachable when none is)."""
    desktop_type = desktops.catalog.types.get(slug)
    if desktop_type is not None and desktops.engine.has_image(desktop_type.image):
        return desktop_type.image
    for item in desktops.catalog:
        if desktops.engine.has_image(item.image):
            return item.image
    raise DesktopUnreachable("No desktop image is on this server to read the files with; ask your IT admin.",
                             code="no_image_for_files")


def homes_of(desktops, user, slug=None):
    """[(desktop type, volume name, image)] of `user`'s homes that exist (of type `slug`, or
    all), each with an image to read it with (reader_image)."""
    query = db.Desktop.select().where(db.Desktop.user == user).order_by(db.Desktop.desktop_type)
    found = []
    for row in query if slug is None else query.where(db.Desktop.desktop_type == slug):
        name = row.home_volume or desktops.homes.plain_name(row.name)
        volume = desktops.engine.home(name)
        if volume is None or volume.labels.get(OWNER) not in (None, user.uuid):
            continue
        found.append((row.desktop_type, name, reader_image(desktops, row.desktop_type)))
    return found


def download(desktops, user, slug=None):
    """Yield one zip of `user`'s homes (of type `slug`, or all, a folder each), reading one
    home at a time; the reader container of each is removed as soon as it is read."""
    homes = homes_of(desktops, user, slug)

    def tars():
        for folder, name, image in homes:
            with desktops.engine.open_home(name, image, desktops.labels) as home:
                yield folder, home.read("")
    return homes, homes_as_zip(tars())


# -- names and paths --

def check_name(name, what="name"):
    """`name` as one part of a path in a home, or BadRequest saying what is wrong with it."""
    if not name:
        raise BadRequest("The %s is empty." % what, code="bad_name")
    if name in (".", ".."):
        raise BadRequest("%r cannot be a %s." % (name, what), code="bad_name")
    if "/" in name:
        raise BadRequest("A %s cannot contain '/': %r." % (what, name[:80]), code="bad_name")
    if any(ord(c) < 32 or ord(c) == 127 or unicodedata.category(c) == "Cc" for c in name):
        raise BadRequest("A %s cannot contain NUL or control characters." % what, code="bad_name")
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        raise BadRequest("The %s is longer than 255 bytes." % what, code="bad_name")
    return name


def check_path(path):
    """The parts of a "/"-separated path inside a home ("" or "/" is the home itself);
    leading, trailing and doubled slashes are ignored, every part is check_name()d."""
    return [check_name(part, "folder or file name") for part in (path or "").split("/") if part]


def display(name):
    """A name from the engine as text that JSON and zip can carry (bytes that are not UTF-8
    become U+FFFD; such an entry is still in its folder's zip, under that name)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def human(size):
    """1536 -> "1.5 KiB": sizes in messages people read."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return ("%d %s" % (size, unit)) if unit == "bytes" else ("%.1f %s" % (size, unit))
        size /= 1024


class BodyEnded(Exception):
    """The request's body ended before its Content-Length."""


def body_chunks(read, length):
    """Yield the `length` bytes of a request body from `read(n)`, a chunk at a time; raise
    BodyEnded when it ends early."""
    left = length
    while left:
        try:
            chunk = read(min(left, COPY_CHUNK))
        except OSError:  # gevent's input: "unexpected end of file while reading request"
            chunk = b""
        if not chunk:
            raise BodyEnded()
        left -= len(chunk)
        yield chunk


def tar_header(path, kind, size=0, uid=1000, mode=None, mtime=None):
    """The tar header (bytes) of one entry at `path` (relative, "/"-separated): a "folder"
    or a "file" of `size` bytes, owned by `uid` (1000: the desktop's user)."""
    info = tarfile.TarInfo(path)
    info.type = tarfile.DIRTYPE if kind == "folder" else tarfile.REGTYPE
    info.mode = mode if mode is not None else (0o755 if kind == "folder" else 0o644)
    info.uid = info.gid = uid
    info.size = size if kind == "file" else 0
    info.mtime = mtime if mtime is not None else datetime.datetime.now(datetime.timezone.utc).timestamp()
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def tar_padding(size):
    """The zero bytes that fill a file's data up to the next tar block."""
    return tarfile.NUL * (-size % tarfile.BLOCKSIZE)


TAR_END = tarfile.NUL * (2 * tarfile.BLOCKSIZE)


class Files:
    """One person's homes, file by file: the dashboard's file browser, uploads and sizes.
    `desktops` is the lifecycle's Desktops (its engine, catalog, labels and homes)."""

    def __init__(self, desktops, config, database, clock):
        self.desktops = desktops
        self.engine = desktops.engine
        self.labels = desktops.labels
        self.upload_max = config.upload_max_size
        self.quota = config.home_quota
        self.database = database
        self.clock = clock

    def home(self, user, slug):
        """(volume, image) of `user`'s home of desktop type `slug`; DesktopNotFound if none."""
        found = homes_of(self.desktops, user, slug)
        if not found:
            raise DesktopNotFound("There are no files here yet: start the desktop once.", code="no_home")
        return found[0][1:]

    @staticmethod
    def walk(home, parts, last_may_be_link=False):
        """lstat every part of `parts` in `home` (a HomeFiles). Returns (FileStat of the whole
        path, None), or (None, index of the first part that is missing). A link on the way
        is refused, and so is anything but a folder before the last part."""
        found = home.stat("")
        for index in range(1, len(parts) + 1):
            here = "/".join(parts[:index])
            found = home.stat(here)
            if found is None:
                return None, index - 1
            if found.kind == "link" and not (last_may_be_link and index == len(parts)):
                raise BadRequest("%s is a link; iservdesk does not follow links in a home." % display(here),
                                 code="link")
            if index < len(parts) and found.kind != "folder":
                raise BadRequest("%s is not a folder." % display(here), code="not_a_folder")
        return found, None

    def measure(self, volume, image):
        """The bytes the home holds now (du), remembered for the dashboard and the admin."""
        output = self.engine.run_in_home(volume, image, self.labels, ["du", "-sxb", "--", HOME])
        size = int(output.split(b"\t", 1)[0])
        self.remember(volume, size)
        return size

    def used(self, volume, image):
        """The bytes the home holds: as measured within MEASURED_FRESH (several files
        uploaded one after another are measured once), else measured now."""
        known = db.HomeSize.get_or_none(db.HomeSize.volume == volume)
        if known is not None and self.clock() - known.measured_at < MEASURED_FRESH:
            return known.size
        return self.measure(volume, image)

    def remember(self, volume, size):
        with db.write(self.database):
            db.HomeSize.remember(volume, size, self.clock())

    def listing(self, user, slug, path):
        """The entries of the folder `path` of the home: {"path", "entries": [{"name",
        "kind", "size", "modified_at"}], "used", "quota", "upload_max"}, folders first."""
        parts = check_path(path)
        volume, image = self.home(user, slug)
        with self.engine.open_home(volume, image, self.labels) as home:
            found, _ = self.walk(home, parts)
        if found is None:
            raise NotFoundInHome(parts)
        if found.kind != "folder":
            raise BadRequest("%s is not a folder." % display("/".join(parts)), code="not_a_folder")
        output = self.engine.run_in_home(volume, image, self.labels,
                                         ["sh", "-c", LIST_SCRIPT, "sh", HOME, "/".join([HOME] + parts)])
        first, _, rest = output.partition(b"\n")
        used = int(first.split(b"\t", 1)[0])
        self.remember(volume, used)
        fields = rest.split(b"\0")
        entries = []
        for index in range(0, len(fields) - 4, 4):
            kind, size, mtime, raw = fields[index:index + 4]
            name = raw.decode("utf-8", "surrogateescape")
            if name.startswith(UPLOAD_PREFIX):
                continue
            moment = datetime.datetime.fromtimestamp(float(mtime), datetime.timezone.utc)
            entries.append({"name": display(name), "kind": KINDS.get(kind.decode(), "other"),
                            "size": int(size), "modified_at": moment.isoformat()})
        entries.sort(key=lambda entry: (entry["kind"] != "folder", entry["name"].lower()))
        return {"path": "/".join(parts), "entries": entries, "used": used, "quota": self.quota,
                "upload_max": self.upload_max}

    def download(self, user, slug, path):
        """A file or folder of the home, streamed: (filename, size or None, iterator of bytes,
        close). A folder comes as a zip (size None). Call close() when done, also when the
        iterator was never read (it removes the engine's reader)."""
        parts = check_path(path)
        volume, image = self.home(user, slug)
        stack = contextlib.ExitStack()
        home = stack.enter_context(self.engine.open_home(volume, image, self.labels))
        try:
            found, _ = self.walk(home, parts)
            if found is None:
                raise NotFoundInHome(parts)
            if found.kind not in ("file", "folder"):
                raise BadRequest("%s is neither a file nor a folder." % display("/".join(parts)), code="not_a_file")
            name = display(parts[-1]) if parts else slug
            if found.kind == "folder":
                return name + ".zip", None, homes_as_zip([(name, home.read("/".join(parts)))]), stack.close
            # The size from the tar itself: a running desktop may have changed the file since.
            tar = stack.enter_context(tarfile.open(fileobj=_ChunkReader(home.read("/".join(parts))), mode="r|"))
            member = tar.next()
            if member is None or not member.isfile():
                raise NotFoundInHome(parts)
            return name, member.size, _copied(tar.extractfile(member)), stack.close
        except BaseException:
            stack.close()
            raise

    def upload(self, user, slug, folder, name, length, read):
        """Write `length` bytes from `read(n)` (the request's body) as `name` into the folder
        `folder` of the home (made when missing), replacing a file of that name. Refused
        before a byte is written when the file is larger than UPLOAD_MAX_SIZE or the home
        would hold more than HOME_QUOTA. Returns {"path", "size", "used"}."""
        parts = check_path(folder)
        check_name(name, "file name")
        if length > self.upload_max:
            raise TooLarge("%s is %s; a file may have at most %s here." % (display(name), human(length),
                                                                            human(self.upload_max)),
                           code="file_too_large")
        volume, image = self.home(user, slug)
        temporary = parts + [UPLOAD_PREFIX + secrets.token_hex(8)]
        with self.engine.open_home(volume, image, self.labels, writable=True) as home:
            found, missing = self.walk(home, parts)
            if found is not None and found.kind != "folder":
                raise BadRequest("%s is not a folder." % display("/".join(parts)), code="not_a_folder")
            existing = None
            if missing is None:
                existing, _ = self.walk(home, parts + [name])
                if existing is not None and existing.kind != "file":
                    raise Conflict("There is a folder called %s here already." % display(name), code="name_taken")
            used = self.used(volume, image)
            after = used - (existing.size if existing else 0) + length
            if after > self.quota:
                raise TooLarge("This home holds %s of %s; %s (%s) does not fit. Delete something first."
                               % (human(used), human(self.quota), display(name), human(length)),
                               code="quota_exceeded")
            made = [parts[:index] for index in range(len(parts) if missing is None else missing, len(parts))]
            # A new name is written as it is (nothing to lose if it breaks off: it is removed);
            # a file that is there already is replaced only once the new one is complete.
            written = temporary if existing is not None else parts + [name]
            ended = []  # the engine's client turns an error in the stream into one of its own
            try:
                home.write("", self._tar(made, written, length, read, ended))
            except BaseException:
                self._remove(volume, image, written)
                if ended:
                    raise BadRequest("The upload of %s broke off; nothing was changed." % display(name),
                                     code="upload_incomplete") from None
                raise
        if written == temporary:
            self.engine.run_in_home(volume, image, self.labels, [
                "mv", "-f", "-T", "--", "/".join([HOME] + temporary), "/".join([HOME] + parts + [name])],
                writable=True)
        self.remember(volume, after)
        return {"path": "/".join(parts + [name]), "size": length, "used": after}

    @staticmethod
    def _tar(folders, path, length, read, ended):
        """The tar stream of an upload: headers of the `folders` to make, then the file.
        A body that ends early puts True into `ended` and stops the stream."""
        for folder in folders:
            yield tar_header("/".join(folder), "folder")
        yield tar_header("/".join(path), "file", length)
        try:
            yield from body_chunks(read, length)
        except BodyEnded:
            ended.append(True)
            raise
        yield tar_padding(length) + TAR_END

    def _remove(self, volume, image, parts):
        try:
            self.engine.run_in_home(volume, image, self.labels, ["rm", "-rf", "--", "/".join([HOME] + parts)],
                                    writable=True)
        except IServDeskError as error:
            log.warning("could not remove %s from home %s: %s", "/".join(parts), volume, error.detail)

    def delete(self, user, slug, path):
        """Delete a file or folder (with all in it) of the home; a link goes, not its target.
        Returns {"path", "used"}."""
        parts = check_path(path)
        if not parts:
            raise BadRequest("Say what to delete: the home itself cannot be deleted here.", code="bad_name")
        volume, image = self.home(user, slug)
        with self.engine.open_home(volume, image, self.labels) as home:
            found, _ = self.walk(home, parts, last_may_be_link=True)
        if found is None:
            raise NotFoundInHome(parts)
        output = self.engine.run_in_home(volume, image, self.labels, [
            "sh", "-c", 'rm -rf -- "$1" && du -sxb -- "$2"', "sh", "/".join([HOME] + parts), HOME], writable=True)
        used = int(output.split(b"\t", 1)[0])
        self.remember(volume, used)
        return {"path": "/".join(parts), "used": used}


class NotFoundInHome(DesktopNotFound):
    def __init__(self, parts):
        super().__init__("There is no %s in this home." % display("/".join(parts)), code="no_such_file")


def _copied(source):
    """The bytes of the file-like `source`, a chunk at a time."""
    while True:
        data = source.read(COPY_CHUNK)
        if not data:
            return
        yield data
