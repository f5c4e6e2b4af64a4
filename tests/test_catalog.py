"""The desktop catalog: the shipped file, and bad files refused naming file, type and field."""

import os
import subprocess

import pytest

from conftest import ROOT, iservdesk_command, write_config
from iservdesk.desktops import catalog

SHIPPED = os.path.join(ROOT, "packaging", "desktops.toml")


def test_shipped_catalog_has_the_seed_types():
    loaded = catalog.load(SHIPPED, "kasmweb/ubuntu-focal-desktop:1.15.0")
    assert [t.slug for t in loaded] == ["ubuntu-vscode", "ubuntu-desktop", "ubuntu-chromium"]
    assert loaded["ubuntu-vscode"].image == "kasmweb/vs-code:1.15.0"
    assert loaded["ubuntu-desktop"].image == "kasmweb/ubuntu-focal-desktop:1.15.0"
    assert loaded["ubuntu-chromium"].image == "kasmweb/chromium:1.15.0"
    for desktop_type in loaded:
        assert desktop_type.name["de"] and desktop_type.name["en"]
        assert desktop_type.description["de"] and desktop_type.description["en"]
        assert desktop_type.memory and desktop_type.cpus and desktop_type.pids
        assert desktop_type.allowed == ()


def load_text(tmp_path, text, default_image="kasmweb/ubuntu-focal-desktop:1.15.0"):
    path = tmp_path / "desktops.toml"
    path.write_text(text)
    return catalog.load(str(path), default_image)


def test_defaults_and_kasm_image_fallback(tmp_path):
    loaded = load_text(tmp_path, '[desktop.plain]\nname.de = "A"\nname.en = "B"\n', "custom/image:1")
    plain = loaded["plain"]
    assert (plain.image, plain.shm_size, plain.memory, plain.cpus, plain.pids) == ("custom/image:1", "512m", "", 0.0, 0)
    assert plain.may_use(set())


def test_allowed_groups_match_case_insensitively(tmp_path):
    loaded = load_text(tmp_path, '[desktop.x]\nname.de = "A"\nname.en = "B"\nallowed = ["Klasse-7A"]\n')
    assert loaded["x"].may_use({"klasse-7a"})
    assert not loaded["x"].may_use({"klasse-8b"})
    assert loaded["x"].may_use({"klasse-8b"}, is_admin=True)


@pytest.mark.parametrize("text,expected", [
    ('[desktop.Bad_Slug]\nname.de = "A"\nname.en = "B"\n', "desktop 'Bad_Slug': slug:"),
    ('[desktop.x]\nname.de = "A"\n', "desktop 'x': name.en: missing text"),
    ('[desktop.x]\nname.de = "A"\nname.en = "B"\nmemory = "lots"\n', "desktop 'x': memory: expected a size"),
    ('[desktop.x]\nname.de = "A"\nname.en = "B"\ncpus = -1\n', "desktop 'x': cpus: expected a number >= 0"),
    ('[desktop.x]\nname.de = "A"\nname.en = "B"\npids = 1.5\n', "desktop 'x': pids: expected a whole number"),
    ('[desktop.x]\nname.de = "A"\nname.en = "B"\nimage_name = "y"\n', "desktop 'x': image_name: unknown field"),
    ('[desktop.x]\nname.de = "A"\nname.en = "B"\nallowed = "teachers"\n', "desktop 'x': allowed: expected a list"),
    ('[desktop.x]\nname.de = "A"\nname.en = "B"\n[desktop.x.environment]\nVNC_PW = "x"\n',
     "desktop 'x': environment.VNC_PW: set by iservdesk"),
    ('[desktops.x]\nname.de = "A"\n', "unknown table desktops"),
    ('', "no desktop types"),
    ('[desktop.x\n', "not valid TOML"),
])
def test_bad_catalog_names_file_type_and_field(tmp_path, text, expected):
    with pytest.raises(catalog.CatalogError) as caught:
        load_text(tmp_path, text)
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "desktops.toml"))
    assert expected in message
    assert "\n" not in message


def test_serve_with_a_bad_catalog_exits_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[desktop.x]\nname.de = "A"\nname.en = "B"\nmemory = "lots"\n')
    path = write_config(tmp_path / "x.env", DESKTOPS_FILE=str(bad))
    result = subprocess.run(iservdesk_command("--config", path, "serve"), cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "iservdesk: %s: desktop 'x': memory: expected a size such as 512m or 2g\n" % bad


def test_serve_with_a_missing_catalog_exits_2(tmp_path):
    path = write_config(tmp_path / "x.env", DESKTOPS_FILE=str(tmp_path / "none.toml"))
    result = subprocess.run(iservdesk_command("--config", path, "serve"), cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "DESKTOPS_FILE: cannot read" in result.stderr
