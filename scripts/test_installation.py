#!/usr/bin/python3
"""The seed's installation test, kept by name: runs `iservdesk check` with these arguments
(e.g. `scripts/test_installation.py --config /etc/iservdesk/iservdesk.env`) and exits with
its status. The checks themselves live in iservdesk/check.py."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

environment = dict(os.environ)
if os.path.isdir(os.path.join(ROOT, "iservdesk")):
    # A source checkout: run its iservdesk, not an installed one.
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, environment.get("PYTHONPATH")]))
os.execve(sys.executable, [sys.executable, "-m", "iservdesk"] + sys.argv[1:] + ["check"], environment)
