"""The command line as a user runs it: exit codes, one-line errors, import order."""

import ast
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SECRET_KEY, iservdesk_command, write_config
from iservdesk import __version__


def run(*args, env=None):
    return subprocess.run(iservdesk_command(*args), cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def test_version():
    result = run("--version")
    assert (result.returncode, result.stdout.strip()) == (0, "iservdesk %s" % __version__)


@pytest.mark.parametrize("overrides,expected", [
    ({"OAUTH_CLIENT_SECRET": None}, "iservdesk: OAUTH_CLIENT_SECRET: missing, it must be set"),
    ({"VNC_PASSWORDS": "x"}, "iservdesk: VNC_PASSWORDS: unknown setting in {path}"),
    ({"HOST_PORT_RANGE": "8000-7000"},
     "iservdesk: HOST_PORT_RANGE: '8000-7000' is not valid: the first port must not be larger than the second"),
    ({"SECRET_KEY": "short"},
     "iservdesk: SECRET_KEY: is not valid: must be at least 32 characters (e.g. from `openssl rand -hex 32`)"),
])
def test_serve_with_bad_config_exits_2_with_one_line(tmp_path, overrides, expected):
    path = write_config(tmp_path / "bad.env", **overrides)
    result = run("--config", path, "serve")
    assert result.returncode == 2
    assert result.stderr == expected.format(path=path) + "\n"
    assert result.stdout == ""


def test_serve_with_unreadable_config_exits_2(tmp_path):
    path = str(tmp_path / "nope.env")
    result = run("--config", path, "serve")
    assert result.returncode == 2
    assert result.stderr == "iservdesk: cannot read configuration file %s: No such file or directory\n" % path


def test_config_path_from_environment(tmp_path):
    path = write_config(tmp_path / "env.env")
    result = run("init-db", env={"ISERVDESK_CONFIG": path})
    assert result.returncode == 0, result.stderr
    assert "schema version" in result.stdout


def test_init_db_creates_then_reports_current(tmp_path):
    path = write_config(tmp_path / "db.env")
    first = run("--config", path, "init-db")
    assert first.returncode == 0, first.stderr
    assert "applied:" in first.stdout
    second = run("--config", path, "init-db")
    assert second.stdout.strip().endswith("(already current)")


def test_init_db_in_missing_folder_exits_1_naming_the_setting(tmp_path):
    path = write_config(tmp_path / "db.env", DATABASE_URI="sqlite:////nonexistent-dir/x.db")
    result = run("--config", path, "init-db")
    assert (result.returncode, result.stderr) == (
        1, "iservdesk: DATABASE_URI: folder /nonexistent-dir does not exist\n")


def test_unknown_subcommand_is_a_usage_error():
    assert run("frobnicate").returncode == 2


def test_main_module_patches_gevent_before_any_other_import():
    with open(os.path.join(ROOT, "iservdesk", "__main__.py")) as stream:
        body = [node for node in ast.parse(stream.read()).body
                if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    first, second = body[0], body[1]
    assert isinstance(first, ast.ImportFrom) and first.module == "gevent"
    assert [alias.name for alias in first.names] == ["monkey"]
    assert ast.unparse(second) == "monkey.patch_all()"


def test_running_the_module_raises_no_monkey_patch_warning(tmp_path):
    # gevent warns (MonkeyPatchWarning) when ssl or threading were imported before patching.
    result = subprocess.run([sys.executable, "-W", "error", "-m", "iservdesk", "--version"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_serve_refuses_to_run_without_monkey_patching(tmp_path):
    path = write_config(tmp_path / "x.env")
    code = "import sys; from iservdesk.cli import main; sys.exit(main(['--config', %r, 'serve']))" % path
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "gevent has not patched" in result.stderr


def test_settings_command_prints_env_example():
    result = run("settings")
    assert result.returncode == 0
    assert "SECRET_KEY=" in result.stdout and "HOST_PORT_RANGE=7000-8000" in result.stdout
    assert SECRET_KEY not in result.stdout
