"""Entry point: gevent's monkey-patching comes first, before anything imports socket or ssl."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from iservdesk.cli import main  # noqa: E402


def run():
    """Console-script entry point (`iservdesk`)."""
    sys.exit(main())


if __name__ == "__main__":
    run()
