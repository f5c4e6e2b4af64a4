"""A Unix-socket relay for tests: makes an engine appear at (and vanish from) a path."""

import os
import socket
import socketserver
import threading


class Relay:
    """Forward connections on unix socket `path` to unix socket `target` until stop()."""

    def __init__(self, path, target):
        self.path, self.target = path, target
        self.open = set()  # sockets of live connections, closed by stop() like a dying engine
        relay = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                upstream = socket.socket(socket.AF_UNIX)
                upstream.connect(relay.target)
                relay.open.update((upstream, self.request))
                pump = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
                pump.start()
                _copy(self.request, upstream)
                pump.join(30)
                upstream.close()

        self.server = socketserver.ThreadingUnixStreamServer(path, Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        os.unlink(self.path)
        for sock in list(self.open):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _copy(source, destination):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            destination.sendall(data)
    except OSError:
        pass
    finally:
        try:
            destination.shutdown(socket.SHUT_WR)
        except OSError:
            pass
