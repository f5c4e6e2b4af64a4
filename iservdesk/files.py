"""Files out of homes: a home (or all of a person's homes) as one zip, streamed.

The engine gives a home as a tar stream (Engine.read_home, read through a container that
is never started, so running, stopped and removed desktops are alike); this module turns
it into a zip while it flows, a chunk at a time, so a home of gigabytes never sits in the
portal's memory. Only regular files and folders are copied: symbolic links, devices and
fifos are left out, so a link in a home to /etc/shadow or to another mount yields
nothing. Zip64 throughout (files over 4 GiB), stored without compression: the portal's CPU
is for the desktops, and what homes hold (images, documents, archives) is mostly
compressed already.
"""

import datetime
import tarfile
import zipfile

from . import db
from .desktops import OWNER
from .errors import DesktopUnreachable

COPY_CHUNK = 256 * 1024  # bytes per read of a file inside the tar stream


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
    tar's entries under "kasm-user/" (Engine.read_home), each put under `folder/`."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for folder, chunks in homes:
            with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as tar:
                for member in tar:
                    parts = member.name.split("/")[1:]  # without "kasm-user"
                    if not parts or any(part in ("", ".", "..") for part in parts):
                        continue
                    name = "/".join([folder] + parts)
                    moment = datetime.datetime.fromtimestamp(max(member.mtime, 315532800), datetime.timezone.utc)
                    if member.isdir():
                        archive.writestr(zipfile.ZipInfo(name + "/", moment.timetuple()[:6]), b"")
                    elif member.isfile():
                        info = zipfile.ZipInfo(name, moment.timetuple()[:6])
                        info.file_size = member.size
                        source = tar.extractfile(member)
                        with archive.open(info, "w", force_zip64=True) as target:
                            while True:
                                data = source.read(COPY_CHUNK)
                                if not data:
                                    break
                                target.write(data)
                                yield sink.take()
                    yield sink.take()
    yield sink.take()


def homes_of(desktops, user, slug=None):
    """[(folder, volume name, image)] of `user`'s homes (of desktop type `slug`, or all),
    each with an image of the catalog that is on the host to read it with."""
    present = [item.image for item in desktops.catalog if desktops.engine.has_image(item.image)]
    found = []
    for row in db.Desktop.select().where(db.Desktop.user == user).order_by(db.Desktop.desktop_type):
        if slug is not None and row.desktop_type != slug:
            continue
        name = row.home_volume or desktops.homes.plain_name(row.name)
        volume = desktops.engine.home(name)
        if volume is None or volume.labels.get(OWNER) not in (None, user.uuid):
            continue
        desktop_type = desktops.catalog.types.get(row.desktop_type)
        image = desktop_type.image if desktop_type is not None and desktop_type.image in present else (
            present[0] if present else None)
        if image is None:
            raise DesktopUnreachable("No desktop image is on this server to read the files with; ask your IT admin.",
                                     code="no_image_for_files")
        found.append((row.desktop_type, name, image))
    return found


def download(desktops, user, slug=None):
    """Yield one zip of `user`'s homes (of type `slug`, or all, a folder each), reading one
    home at a time; the reader container of each is removed as soon as it is read."""
    homes = homes_of(desktops, user, slug)

    def tars():
        for folder, name, image in homes:
            with desktops.engine.read_home(name, image, desktops.labels) as chunks:
                yield folder, chunks
    return homes, homes_as_zip(tars())
