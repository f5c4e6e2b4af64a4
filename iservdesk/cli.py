"""The command line: `iservdesk [--config PATH] SUBCOMMAND`; the only entry point.

Exit status: 0 success, 1 runtime failure (cannot bind, database unusable, no Docker
engine for cleanup, a failed check), 2 bad configuration or usage. Configuration errors
are one line naming the variable.
"""

import argparse
import logging
import os
import sys

from . import __version__, config as configmodule, db, log as logmodule

log = logging.getLogger(__name__)

EXIT_FAILURE = 1
EXIT_CONFIG = 2


def fail(message, status):
    print("iservdesk: %s" % message, file=sys.stderr)
    return status


def cmd_serve(config, args):
    from gevent import monkey
    if not monkey.is_module_patched("socket"):
        return fail("serve must be started as `iservdesk serve` or `python3 -m iservdesk serve` "
                    "(gevent has not patched the standard library)", EXIT_FAILURE)
    from . import server
    from .desktops.catalog import CatalogError
    from .web import make_app

    clock = db.utcnow  # one clock for the routes and the desktops' lifecycle
    try:
        database, desktops = open_desktops(config, clock)
    except CatalogError as error:
        return fail(str(error), EXIT_CONFIG)
    app = make_app(config, database, desktops, clock=clock)
    host, port = config.listen
    desktops.run_background()
    if app.context.preparations is not None:
        app.context.preparations.run_background()
        app.context.handouts.run_background()
    try:
        server.serve(app, host, port)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        return fail("LISTEN: cannot listen on %s:%d: %s" % (host, port, reason), EXIT_FAILURE)
    finally:
        if app.context.preparations is not None:
            app.context.preparations.shutdown()
            app.context.handouts.shutdown()
        desktops.shutdown()
    return 0


def cmd_import_seed(config, args):
    """Move the old product's containers' files into homes here (iservdesk/seed.py)."""
    from . import seed
    from .desktops.catalog import CatalogError
    from .errors import IServDeskError

    try:
        database, desktops = open_desktops(config)
    except CatalogError as error:
        return fail(str(error), EXIT_CONFIG)
    url = args.database or config.seed_database_uri
    with database.connection_context():
        try:
            moves = seed.plan(desktops, seed.read_database(url) if url else None)
        except IServDeskError as error:
            return fail(error.public_message if error.status < 500 else error.detail, EXIT_FAILURE)
        if not moves:
            print("no containers of iserv-remote-desktop (label managed_by=iserv-remote-desktop) on the engine")
            return 0
        movable = [move for move in moves if not move.why]
        for move in moves:
            print(("would " if args.dry_run or not args.yes else "") + move.line())
        if args.dry_run or not movable:
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                return fail("add --yes to move these files and remove the old containers (--dry-run lists only)",
                            EXIT_FAILURE)
            if input("Move the files of %d containers and remove them? Type yes: " % len(movable)).strip() != "yes":
                print("nothing changed")
                return 0
        failed = 0
        for move, error in seed.run(desktops, moves, "cli", db.utcnow()):
            print("moved %s" % move.container if not error else "FAILED %s: %s" % (move.container, error))
            failed += bool(error)
    return EXIT_FAILURE if failed else 0


def cmd_init_db(config, args):
    database = db.open_database(config.database_uri)
    applied = db.migrate(database)
    print("database %s: schema version %d%s" % (
        config.database_uri, db.SCHEMA_VERSION,
        " (applied: %s)" % ", ".join(applied) if applied else " (already current)"))
    return 0


def open_desktops(config, clock=db.utcnow):
    """(database, Desktops) for `config`: the catalog loaded (CatalogError if bad), the
    database migrated, the Docker engine behind them; `clock` is the Desktops' "now"."""
    from .desktops import catalog as catalogmodule
    from .desktops.docker import DockerEngine
    from .desktops.events import Bus
    from .desktops.swarm import SwarmEngine
    from .desktops.lifecycle import Desktops

    catalog = catalogmodule.load(config.desktops_file, config.kasm_image)
    database = db.open_database(config.database_uri)
    db.migrate(database)
    installation = db.installation_id(database)
    options = dict(timeout=config.docker_timeout, port_range=config.host_port_range,
                   network="%s-desktops" % config.container_prefix,
                   network_labels={"de.iservdesk.installation": installation})
    if config.docker_backend == "swarm":
        images = sorted({desktop_type.image for desktop_type in catalog})
        engine = SwarmEngine(config.docker_url, home_driver=config.home_volume_driver,
                             home_options=config.home_volume_options,
                             helper_image=config.kasm_image if config.kasm_image in images else images[0], **options)
    else:
        engine = DockerEngine(config.docker_url, **options)
    return database, Desktops(config, catalog, engine, database, Bus(), clock=clock)


def cmd_cleanup(config, args):
    from . import cleanup
    from .desktops.catalog import CatalogError

    try:
        database, desktops = open_desktops(config)
    except CatalogError as error:
        return fail(str(error), EXIT_CONFIG)
    report = cleanup.run(config, desktops, database, db.utcnow(), dry_run=args.dry_run)
    print(report.summary())
    if report.error:
        return fail(report.error, EXIT_FAILURE)
    return 0


def cmd_forget(config, args):
    """Delete a person's containers, homes and rows; the audit log keeps a pseudonym."""
    from . import forget
    from .desktops.catalog import CatalogError
    from .errors import IServDeskError

    try:
        database, desktops = open_desktops(config)
    except CatalogError as error:
        return fail(str(error), EXIT_CONFIG)
    with database.connection_context():
        try:
            user = forget.find(args.person)
            what = forget.forget(desktops, user, config.secret_key, "cli", dry_run=args.dry_run)
        except IServDeskError as error:
            return fail(error.public_message if error.status < 500 else error.detail, EXIT_FAILURE)
    verb = "would remove" if args.dry_run else "removed"
    for line in what.lines():
        print("%s %s" % (verb, line))
    print("%s %s (%s) as %s" % ("would forget" if args.dry_run else "forgot", what.user.username, what.user.uuid,
                                what.pseudonym))
    return 0


def cmd_pull(config, args):
    """Pull every catalog image here, and on a Swarm on every ready node too."""
    from . import check
    from .desktops.catalog import CatalogError
    from .errors import DesktopError

    try:
        database, desktops = open_desktops(config)
    except CatalogError as error:
        return fail(str(error), EXIT_CONFIG)
    failed = False
    for image in sorted({desktop_type.image for desktop_type in desktops.catalog}):
        try:
            desktops.engine.pull(image, lambda percent: None)
            print("pulled %s" % image)
        except DesktopError as error:
            if not desktops.engine.has_image(image):
                print("%s: %s" % (image, error.detail), file=sys.stderr)
                failed = True
                continue
            print("%s: not pulled (%s); the copy here is used" % (image, error.detail))
        if not hasattr(desktops.engine, "on_every_node"):
            continue
        results = desktops.engine.on_every_node(desktops.engine._reference(image), check.PROBE,
                                                desktops.labels, timeout=600)
        for hostname, (ok, text) in sorted(results.items()):
            print("%s on %s: %s" % (image, hostname, "ok" if ok else text), file=sys.stdout if ok else sys.stderr)
            failed = failed or not ok
    return EXIT_FAILURE if failed else 0


def cmd_check(args):
    from . import check
    return check.main(args.config)


def cmd_settings(args):
    print(configmodule.markdown_table() if args.markdown else configmodule.env_example())
    return 0


def parser():
    top = argparse.ArgumentParser(prog="iservdesk", description="Remote desktops for schools, "
                                  "signed in with IServ.")
    top.add_argument("--version", action="version", version="iservdesk %s" % __version__)
    top.add_argument("--config", metavar="PATH",
                     default=os.environ.get("ISERVDESK_CONFIG", configmodule.DEFAULT_PATH),
                     help="settings file (default: $ISERVDESK_CONFIG or %(default)s)")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    commands.add_parser("serve", help="run the portal")
    commands.add_parser("init-db", help="create or upgrade the database, then exit")
    cleanup = commands.add_parser("cleanup", help="stop idle desktops, remove long-stopped ones, "
                                  "expire sessions (one pass; a systemd timer runs it)")
    cleanup.add_argument("--dry-run", action="store_true", help="only report what would be done")
    forget = commands.add_parser("forget", help="delete a person's desktops, home volumes and rows (DSGVO); "
                                 "the audit log keeps a pseudonym")
    forget.add_argument("person", help="account name or uuid")
    forget.add_argument("--dry-run", action="store_true", help="only list what would go")
    seed = commands.add_parser("import-seed", help="move the files of iserv-remote-desktop's containers into "
                               "homes here, then remove those containers")
    seed.add_argument("--database", metavar="URL", help="the old product's database (sqlite:///... or "
                      "postgresql://...), for people's IServ uuids and last access; default: its DATABASE_URI "
                      "if the settings file still names it")
    seed.add_argument("--dry-run", action="store_true", help="only list what would be done")
    seed.add_argument("--yes", action="store_true", help="do it without asking")
    commands.add_parser("check", help="check the installation, one line per check")
    commands.add_parser("pull", help="pull every desktop image of the catalog (on a Swarm: on every node)")
    settings = commands.add_parser("settings", help="print every setting (.env.example form)")
    settings.add_argument("--markdown", action="store_true", help="as the README's table")
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command == "settings":
        return cmd_settings(args)
    if args.command == "check":
        return cmd_check(args)  # explains a bad configuration itself
    try:
        config = configmodule.load(args.config)
    except configmodule.ConfigError as error:
        return fail(str(error), EXIT_CONFIG)
    logmodule.setup(config.log_level)
    for note in config.notes:
        log.warning("%s", note)
    try:
        return {"serve": cmd_serve, "init-db": cmd_init_db,
                "cleanup": cmd_cleanup, "forget": cmd_forget,
                "import-seed": cmd_import_seed, "pull": cmd_pull}[args.command](config, args)
    except db.DatabaseError as error:
        return fail(str(error), EXIT_FAILURE)
