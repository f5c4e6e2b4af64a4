"""`iservdesk check`: is this installation ready to serve? One line per check: OK, WARN or FAIL.

The checks look and probe; they change nothing (the database is not migrated, no image is
pulled, nothing is written to the engine). Every line that is not OK says what to do.
Exit status: 0 when nothing FAILs, 1 when something does, 2 when the configuration cannot
be loaded (every later check needs it).
"""

import dataclasses
import os
import pwd
import re
import shutil
import subprocess
import sys
import urllib.parse

from . import config as configmodule, db
from .desktops.ports import bindable

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SERVICE_USER = "iservdesk"
NGINX_TIMEOUT = 30  # seconds for `nginx -T`


@dataclasses.dataclass(frozen=True)
class Result:
    status: str  # OK, WARN or FAIL
    name: str
    text: str

    def line(self):
        return "%-4s %s: %s" % (self.status, self.name, self.text)


def main(path, environ=None, out=None, nginx=("nginx",)):
    """Run every check for the settings file `path`, print one line each; return the exit status.

    `nginx` is the command (and options, e.g. `-c FILE`) whose `-T` shows the nginx
    configuration.
    """
    out = out or sys.stdout
    try:
        config = load(path, environ)
    except configmodule.ConfigError as error:
        print(error, file=out)
        return 2
    print(Result(OK, "configuration", "%s is valid" % (path or "(environment)")).line(), file=out)
    for note in config.notes:
        print(Result(WARN, "configuration", note).line(), file=out)
    failed = False
    for result in run_checks(config, nginx):
        print(result.line(), file=out, flush=True)
        failed = failed or result.status == FAIL
    return 1 if failed else 0


def load(path, environ=None):
    """The loaded configuration, or ConfigError with a FAIL line that says what to edit."""
    if path and not os.path.exists(path):
        raise configmodule.ConfigError(Result(FAIL, "configuration", (
            "%s does not exist. Create it from the template: `iservdesk settings > %s`, then set "
            "PUBLIC_URL, SECRET_KEY (`openssl rand -hex 32`), OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET "
            "and OAUTH_ISSUER; or name another file with --config or $ISERVDESK_CONFIG.")
            % (path, path)).line())
    try:
        return configmodule.load(path, environ)
    except configmodule.ConfigError as error:
        raise configmodule.ConfigError(Result(FAIL, "configuration", (
            "%s. Edit %s (`iservdesk settings` lists every setting with its meaning)."
            % (error, path or "the environment"))).line()) from None


def run_checks(config, nginx=("nginx",)):
    """Yield a Result per check of a loaded configuration, slowest (network) last."""
    from .desktops import catalog as catalogmodule
    from .desktops.docker import DockerEngine
    from .errors import DesktopError

    yield check_database(config)
    engine = DockerEngine(config.docker_url, timeout=config.docker_timeout)
    try:
        version = engine.ping()
        yield Result(OK, "Docker engine", "version %s at %s" % (version, config.docker_url))
    except DesktopError as error:
        engine = None
        yield Result(FAIL, "Docker engine", "%s. Start it (`systemctl start docker`); the service "
                     "user %s needs the group docker." % (error, SERVICE_USER))
    try:
        catalog = catalogmodule.load(config.desktops_file, config.kasm_image)
        yield Result(OK, "catalog", "%d desktop types in %s" % (len(list(catalog)), config.desktops_file))
    except catalogmodule.CatalogError as error:
        catalog = None
        yield Result(FAIL, "catalog", "%s. Fix the file (packaging/desktops.toml shows every field)." % error)
    if engine is not None and catalog is not None:
        for image in sorted({desktop_type.image for desktop_type in catalog}):
            yield check_image(engine, image)
    if engine is not None:
        yield check_ports(config, engine)
    if engine is not None and config.docker_backend == "swarm":
        yield from check_swarm(config, catalog)
    yield check_identity_provider(config)
    yield check_redirect_uri(config)
    if config.public_url.startswith("https://"):
        yield Result(OK, "PUBLIC_URL", config.public_url)
    else:
        yield Result(WARN, "PUBLIC_URL", "%s is plain http: sign-ins and sessions travel unencrypted "
                     "and cookies are not Secure. Put nginx with TLS in front and set an https:// "
                     "address (SSL_SETUP.md)." % config.public_url)
    if config.vnc_password:
        # The value is never printed: it is a secret, and this output lands in tickets.
        yield Result(WARN, "VNC_PASSWORD", "set: every desktop container shares this one password, "
                     "and each desktop's user can read it in their own container's environment. "
                     "Whoever knows it can enter every desktop that a process on this host or a "
                     "container can reach. Leave it empty, and each container gets its own random one.")
    else:
        yield Result(OK, "VNC_PASSWORD", "empty: each container gets its own random password")
    yield check_nginx(config, nginx)


def check_database(config):
    path = config.database_uri
    if not os.path.exists(path):
        return Result(FAIL, "database", "%s does not exist. Create it with `iservdesk init-db` "
                      "(as the service user, or chown it to %s afterwards)." % (path, SERVICE_USER))
    for target in (path, os.path.dirname(path)):
        if not os.access(target, os.W_OK):
            return Result(FAIL, "database", "%s is not writable for %s. `chown %s: %s`." % (
                target, pwd.getpwuid(os.getuid()).pw_name, SERVICE_USER, target))
    try:
        database = db.open_database(path)
        try:
            with database.connection_context():
                db.check(database)
                # Take the write lock once: proves no other process holds the file hostage.
                with db.write(database) as transaction:
                    transaction.rollback()
        finally:
            database.close()
    except db.DatabaseError as error:
        return Result(FAIL, "database", "%s: %s" % (path, error.reason))
    owner = _owner_problem(path)
    if owner:
        return Result(WARN, "database", owner)
    return Result(OK, "database", "%s is writable, schema version %d" % (path, db.SCHEMA_VERSION))


def _owner_problem(path):
    """When root checks a system installation: the service user must own the database."""
    try:
        service = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None  # no system installation here (a development checkout)
    if os.getuid() == 0 and os.stat(path).st_uid != service.pw_uid:
        return ("%s is not owned by %s, who runs the service: `chown %s: %s*`"
                % (path, SERVICE_USER, SERVICE_USER, path))
    return None


def check_image(engine, image):
    from .errors import DesktopError
    try:
        if engine.has_image(image):
            return Result(OK, "image", "%s is present" % image)
    except DesktopError as error:
        return Result(FAIL, "image", "%s: %s" % (image, error))
    return Result(WARN, "image", "%s is not on this host: it is pulled at the first start, which keeps "
                  "that student waiting for minutes. Pull it now: `docker pull %s`." % (image, image))


# Printed by each node's probe: its host name (the probe's own) and whether its dockerd
# starts containers with no-new-privileges (the swarm API cannot ask for it per service).
PROBE = 'echo "$(hostname) no-new-privileges=$(grep NoNewPrivs /proc/self/status | tr -dc 0-9)"'


def check_swarm(config, catalog):
    """On a Swarm: each node's state, and on every ready node a probe of each catalog image
    on the desktops' network: the image is there (or can be pulled), the network's config
    is there, and dockerd runs containers with no-new-privileges."""
    from .desktops.swarm import SwarmEngine
    from .errors import DesktopError
    from .files import human

    engine = SwarmEngine(config.docker_url, timeout=config.docker_timeout,
                         network="%s-desktops" % config.container_prefix)
    try:
        nodes = engine.nodes()
    except DesktopError as error:
        yield Result(FAIL, "Swarm", "%s. DOCKER_BACKEND=swarm needs DOCKER_URL to be a manager of a "
                     "Swarm (`docker swarm init`; README: Docker Swarm)." % error.detail)
        return
    for node in nodes:
        text = "%s (%s): %s, %s, %s memory" % (node.hostname, node.address, node.state, node.availability,
                                                human(node.memory))
        if node.usable:
            yield Result(OK, "Swarm node", text)
        else:
            yield Result(WARN, "Swarm node", text + ": desktops whose homes are there cannot start "
                         "(`docker node update --availability active`, or bring the node back)")
    labels = {"de.iservdesk.installation": "check"}
    everywhere = None  # an image that runs on every ready node, for the next probe
    for image in sorted({desktop_type.image for desktop_type in catalog or ()}):
        try:
            results = engine.on_every_node(engine._reference(image), PROBE, labels, timeout=config.docker_timeout * 6)
        except DesktopError as error:
            yield Result(FAIL, "Swarm image", "%s: %s" % (image, error.detail))
            continue
        for hostname, (ok, text) in sorted(results.items()):
            if not ok:
                yield Result(FAIL, "Swarm image", "%s on %s: %s. Load or pull it there (`iservdesk pull`), and "
                             "do the node setup (README: Docker Swarm)." % (image, hostname, text))
            elif "no-new-privileges=1" not in text:
                yield Result(WARN, "Swarm node", "%s: dockerd does not start containers with no-new-privileges; "
                             'add "no-new-privileges": true to its /etc/docker/daemon.json' % hostname)
            else:
                yield Result(OK, "Swarm image", "%s runs on %s" % (image, hostname))
        if all(ok for ok, _ in results.values()):
            everywhere = everywhere or image
    if everywhere is not None:
        yield check_reach(engine, everywhere, labels, config.docker_timeout * 6)


SAFE_TARGET = re.compile(r"^[A-Za-z0-9.-]+:[0-9.]+:[0-9]+$")


def check_reach(engine, image, labels, timeout):
    """The DOCKER-USER rule of every node, by its effect: from each node (a probe on the
    desktops' network, whose connections leave with the node's address) a connection to
    each running desktop on another node must be refused; only the portal may connect."""
    from .errors import DesktopError

    try:
        targets = ["%s:%s:%d" % (desktop.node_name, desktop.address, desktop.host_port)
                   for desktop in engine.list({}) if "de.iservdesk.desktop" in desktop.labels
                   and desktop.running and desktop.address and desktop.host_port]
    except DesktopError as error:
        return Result(FAIL, "Swarm ports", error.detail)
    # One desktop per node tells whether that node's rule is there (each refused try waits 3 s).
    targets = sorted({target.split(":")[0]: target for target in targets if SAFE_TARGET.match(target)}.values())
    hosts = {target.split(":")[0] for target in targets}
    if len(hosts) < 1 or len(engine.nodes()) < 2:
        return Result(WARN, "Swarm ports", "not verified: no desktop runs, or the Swarm has one node. Run "
                      "`iservdesk check` again while desktops run (the DOCKER-USER rule of README: Docker Swarm).")
    # Names, addresses and ports from Docker, checked above: nothing of a user's.
    command = ('for t in %s; do h=${t%%%%:*}; r=${t#*:}; a=${r%%%%:*}; p=${r#*:}; '
               '[ "$h" = "$(hostname)" ] && continue; '
               'if timeout 3 bash -c "</dev/tcp/$a/$p" 2>/dev/null; then echo "$(hostname) reached $h $a:$p"; fi; '
               'done; echo "$(hostname) done"' % " ".join(targets))
    try:
        results = engine.on_every_node(engine._reference(image), command, labels, timeout=timeout)
    except DesktopError as error:
        return Result(FAIL, "Swarm ports", error.detail)
    reached = []
    for hostname, (ok, text) in sorted(results.items()):
        if not ok or "done" not in text:
            return Result(FAIL, "Swarm ports", "the probe on %s did not finish: %s" % (hostname, text))
        reached += ["%s reached %s" % (hostname, line.split("reached ", 1)[1]) for line in text.splitlines()
                    if "reached " in line]
    if reached:
        return Result(FAIL, "Swarm ports", "%s: desktops answer other addresses than the portal's. Add the "
                      "DOCKER-USER rule on the nodes named after \"reached\" (README: Docker Swarm)."
                      % "; ".join(reached))
    return Result(OK, "Swarm ports", "no node reaches a desktop on another node (one desktop on each of "
                  "%d nodes tried); only the portal may" % len(hosts))


def check_ports(config, engine):
    from .errors import DesktopError
    ports = config.host_port_range
    try:
        held = engine.held_ports()
    except DesktopError as error:
        return Result(FAIL, "HOST_PORT_RANGE", str(error))
    free = [port for port in ports if port not in held and bindable(port)]
    described = "%d-%d: %d of %d ports free" % (ports[0], ports[-1], len(free), len(ports))
    if not free:
        return Result(FAIL, "HOST_PORT_RANGE", "%s; no desktop can start. Widen the range, or free its "
                      "ports." % described)
    if len(free) < config.max_desktops:
        return Result(WARN, "HOST_PORT_RANGE", "%s, fewer than MAX_DESKTOPS (%d). Widen the range."
                      % (described, config.max_desktops))
    return Result(OK, "HOST_PORT_RANGE", described)


def check_identity_provider(config):
    from . import oidc
    probe = oidc.Provider(config).probe()
    if not probe.ok:
        issuer = config.oauth_issuer
        return Result(FAIL, "identity provider", "no discovery document for OAUTH_ISSUER %s (%s). Check "
                      "the address, and that this server reaches IServ: `curl %s/.well-known/"
                      "openid-configuration`." % (issuer, probe.problem.detail, issuer))
    return Result(OK, "identity provider", "discovery answers; issuer %s" % probe.issuer)


def check_redirect_uri(config):
    expected = config.public_url + "/authorize"
    if config.oauth_redirect_uri != expected:
        return Result(WARN, "redirect URI", "OAUTH_REDIRECT_URI is %s, but the portal answers sign-ins at "
                      "%s. Unless a proxy maps one to the other, set it (and the client in IServ) to %s."
                      % (config.oauth_redirect_uri, expected, expected))
    return Result(OK, "redirect URI", "%s (register exactly this in IServ)" % expected)


def check_nginx(config, nginx):
    if shutil.which(nginx[0]) is None:
        return Result(WARN, "nginx", "not installed. Users need TLS in front of the portal: `apt-get "
                      "install nginx`, then install the site (README, 'nginx in front').")
    try:
        answer = subprocess.run(list(nginx) + ["-T"], capture_output=True, text=True, timeout=NGINX_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Result(FAIL, "nginx", "`nginx -T` did not run: %s" % error)
    if answer.returncode != 0:
        lines = [line for line in answer.stderr.splitlines() if "[emerg]" in line or "failed" in line]
        return Result(FAIL, "nginx", "`nginx -t` fails: %s. Fix the configuration, then `systemctl "
                      "reload nginx`." % (lines[0] if lines else answer.stderr.strip()[-300:]))
    host, port = config.listen
    address = re.escape("%s:%d" % (urllib.parse.quote(host, safe=":"), port))
    if not re.search(r"(\bserver\s+|\bproxy_pass\s+https?://)%s\b" % address, answer.stdout):
        return Result(WARN, "nginx", "the configuration is valid, but no site proxies to LISTEN %s:%d. "
                      "Install "
                      "nginx/iservdesk.conf (README, 'nginx in front')." % (host, port))
    return Result(OK, "nginx", "the configuration is valid and proxies to %s:%d" % (host, port))
