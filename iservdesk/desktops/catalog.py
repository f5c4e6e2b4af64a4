"""The catalog of desktop types, read from DESKTOPS_FILE (TOML).

Each type is a table `[desktop.<slug>]`; see packaging/desktops.toml for the shipped
three. Loading validates every field and raises CatalogError naming the file, the type
and the field, so a typo stops start-up instead of surfacing at a student's click.
"""

import dataclasses
import re
import tomllib

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
SIZE = re.compile(r"^[0-9]+[bkmg]?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Set by iservdesk per container; a catalog must not override them.
RESERVED_ENV = frozenset({"VNC_PW", "VNC_VIEW_ONLY_PW"})
LANGUAGES = ("de", "en")


class CatalogError(Exception):
    """The catalog file is unreadable or invalid; str() is one line."""


@dataclasses.dataclass(frozen=True)
class DesktopType:
    slug: str
    name: dict  # language -> text
    description: dict
    icon: str
    image: str
    shm_size: str
    memory: str  # "" = no limit
    cpus: float  # 0 = no limit
    pids: int  # 0 = no limit
    allowed: tuple  # lower-case group/role names; empty = everyone
    environment: dict

    def may_use(self, memberships, is_admin=False):
        return is_admin or not self.allowed or bool(set(self.allowed) & set(memberships))

    def to_json(self):
        return {"desktop_type": self.slug, "name": self.name, "description": self.description,
                "icon": self.icon}


class Catalog:
    """The ordered desktop types; `catalog[slug]` raises KeyError for unknown slugs."""

    def __init__(self, types):
        self.types = {desktop_type.slug: desktop_type for desktop_type in types}

    def __getitem__(self, slug):
        return self.types[slug]

    def __contains__(self, slug):
        return slug in self.types

    def __iter__(self):
        return iter(self.types.values())

    def usable_by(self, memberships, is_admin=False):
        return [t for t in self if t.may_use(memberships, is_admin)]


def load(path, default_image):
    """Read and validate the catalog at `path`. `default_image` fills a missing `image`."""
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except OSError as error:
        raise CatalogError("DESKTOPS_FILE: cannot read %s: %s" % (path, error.strerror)) from None
    except tomllib.TOMLDecodeError as error:
        raise CatalogError("%s: not valid TOML: %s" % (path, error)) from None
    unknown = set(data) - {"desktop"}
    if unknown:
        raise CatalogError("%s: unknown table %s (desktop types go in [desktop.<slug>])"
                           % (path, sorted(unknown)[0]))
    tables = data.get("desktop")
    if not isinstance(tables, dict) or not tables:
        raise CatalogError("%s: no desktop types (add a [desktop.<slug>] table)" % path)
    return Catalog([_parse(path, slug, table, default_image) for slug, table in tables.items()])


FIELDS = {"name", "description", "icon", "image", "shm_size", "memory", "cpus", "pids",
          "allowed", "environment"}


def _parse(path, slug, table, default_image):
    def fail(field, problem):
        raise CatalogError("%s: desktop %r: %s: %s" % (path, slug, field, problem))

    if not SLUG.match(slug):
        fail("slug", "use 1-31 lower-case letters, digits and hyphens")
    if not isinstance(table, dict):
        fail("table", "expected a table")
    for field in table:
        if field not in FIELDS:
            fail(field, "unknown field (known: %s)" % ", ".join(sorted(FIELDS)))

    def texts(field, required):
        value = table.get(field, {})
        if not isinstance(value, dict):
            fail(field, "expected a table of languages, e.g. %s.de = \"...\"" % field)
        for language in LANGUAGES:
            if required and not isinstance(value.get(language), str):
                fail("%s.%s" % (field, language), "missing text")
        return {language: str(value.get(language, "")) for language in LANGUAGES}

    def text(field, default):
        value = table.get(field, default)
        if not isinstance(value, str):
            fail(field, "expected a string")
        return value

    def size(field, default):
        value = text(field, default).lower()
        if value and not SIZE.match(value):
            fail(field, "expected a size such as 512m or 2g")
        return value

    def number(field, kind):
        value = table.get(field, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                or (kind is int and not isinstance(value, int)):
            fail(field, "expected a %s >= 0" % ("whole number" if kind is int else "number"))
        return kind(value)

    allowed = table.get("allowed", [])
    if not isinstance(allowed, list) or not all(isinstance(item, str) for item in allowed):
        fail("allowed", "expected a list of group or role names")
    environment = table.get("environment", {})
    if not isinstance(environment, dict):
        fail("environment", "expected a table of NAME = \"value\"")
    for name, value in environment.items():
        if not ENV_NAME.match(name):
            fail("environment.%s" % name, "not a valid variable name")
        if name in RESERVED_ENV:
            fail("environment.%s" % name, "set by iservdesk per container; remove it")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            fail("environment.%s" % name, "expected a string or number")
    image = text("image", default_image)
    if not image:
        fail("image", "missing")
    return DesktopType(
        slug=slug, name=texts("name", True), description=texts("description", False),
        icon=text("icon", "desktop"), image=image, shm_size=size("shm_size", "512m") or "512m",
        memory=size("memory", ""), cpus=number("cpus", float), pids=number("pids", int),
        allowed=tuple(item.strip().lower() for item in allowed if item.strip()),
        environment={name: str(value) for name, value in environment.items()})
