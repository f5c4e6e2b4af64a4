"""The gevent WSGI server: listening socket, WebSocket handler, signals, systemd notify.

gevent must have monkey-patched before this module is used (see __main__.py).
"""

import logging
import os
import signal
import socket
import time

import gevent
from gevent.pywsgi import WSGIServer
from geventwebsocket.handler import WebSocketHandler

from .log import scrub_url

log = logging.getLogger(__name__)
access_log = logging.getLogger("iservdesk.access")

# Seconds a graceful stop waits for open requests before closing them.
STOP_TIMEOUT = 10


class RawSocket:
    """The client connection of a WebSocket upgrade under /desktop/, for the proxy to take
    over: it forwards the browser's handshake itself and relays bytes, instead of letting
    gevent-websocket answer the handshake and decode frames."""

    def __init__(self, handler):
        self.handler = handler
        self.taken = False

    def take(self):
        """(socket, buffered reader) of the client; after this, the server writes nothing."""
        self.taken = True
        return self.handler.socket, self.handler.rfile


class Handler(WebSocketHandler):
    def log_request(self):
        # gevent-websocket logs full URLs (OIDC code and state included); with_access_log
        # writes a scrubbed line instead.
        pass

    def get_environ(self):
        environ = super().get_environ()
        # PATH_INFO is percent-decoded; the proxy also needs to see what was sent.
        environ["iservdesk.raw_path"] = self.path.split("?", 1)[0]
        return environ

    def run_application(self):
        environ = self.environ
        if (environ.get("HTTP_UPGRADE", "").lower() == "websocket"
                and environ.get("PATH_INFO", "").startswith("/desktop")):
            raw = environ["iservdesk.websocket"] = RawSocket(self)
            self.close_connection = True
            self.result = self.application(environ, self.start_response)
            if raw.taken:
                if hasattr(self.result, "close"):
                    self.result.close()
                self.result = None
                return
            self.process_result()  # a refusal (401, 403, 409, 502) as a normal response
            return
        super().run_application()


def sd_notify(state):
    """Tell systemd about our state (READY=1, STOPPING=1). A no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
    return True


def with_access_log(app):
    """Log each request at DEBUG with its URL scrubbed (gevent's own log would show codes)."""
    def logged(environ, start_response):
        started = time.monotonic()
        status_seen = []

        def recording_start_response(status, headers, exc_info=None):
            status_seen.append(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        try:
            return app(environ, recording_start_response)
        finally:
            if access_log.isEnabledFor(logging.DEBUG):
                path = environ.get("PATH_INFO", "")
                query = environ.get("QUERY_STRING", "")
                access_log.debug("%s %s %s %.0fms", environ.get("REQUEST_METHOD"),
                                 scrub_url(path + ("?" + query if query else "")),
                                 status_seen[0] if status_seen else "-",
                                 (time.monotonic() - started) * 1000)
    return logged


def serve(app, host, port):
    """Serve `app` on host:port until SIGTERM or SIGINT, then stop gracefully.

    Raises OSError when the address cannot be bound.
    """
    server = WSGIServer((host, port), with_access_log(app), handler_class=Handler,
                        log=None, error_log=logging.getLogger("iservdesk.wsgi"))
    server.start()
    log.info("listening on http://%s:%d", host, server.server_port)

    def stop(signum):
        log.info("received %s, stopping", signal.Signals(signum).name)
        sd_notify("STOPPING=1")
        server.stop(timeout=STOP_TIMEOUT)

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop, signum)
    sd_notify("READY=1")
    server.serve_forever()
    log.info("stopped")
