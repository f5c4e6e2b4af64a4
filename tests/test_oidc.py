"""Claim normalisation: IServ's shapes and the plain shapes other providers send."""

import pytest

from iservdesk import oidc


def test_iserv_groups_object_gives_account_names():
    groups = {"12": {"act": "Klasse-7a", "name": "Klasse 7a"}, "40": {"act": "schueler", "name": "Schüler"}}
    assert oidc.normalise_groups(groups) == ["klasse-7a", "schueler"]


@pytest.mark.parametrize("value,expected", [
    (["Teachers", "admins"], ["admins", "teachers"]),
    ([], []), ({}, []), (None, []), ("admins", []),
    ([{"act": "a"}, {"name": "B"}, 3, ""], ["a", "b"]),
])
def test_other_group_shapes(value, expected):
    assert oidc.normalise_groups(value) == expected


@pytest.mark.parametrize("value,expected", [
    ([{"id": "ROLE_TEACHER", "displayName": "Lehrer"}], ["role_teacher"]),
    (["ROLE_ADMIN", "role_admin"], ["role_admin"]),
    ({"1": {"id": "ROLE_X"}}, ["role_x"]),
    (None, []), ("ROLE_ADMIN", []),
])
def test_role_shapes(value, expected):
    assert oidc.normalise_roles(value) == expected


def test_identity_keys_on_uuid_and_keeps_dotted_names():
    fields = oidc.identity({"sub": "s-1", "uuid": "u-1", "preferred_username": "Max.Muster",
                            "name": "Max Muster", "groups": {"1": {"act": "klasse-7a"}}}, "preferred_username")
    assert fields["uuid"] == "u-1"
    assert fields["username"] == "max.muster"
    assert fields["groups"] == ["klasse-7a"]


def test_identity_falls_back_to_sub():
    assert oidc.identity({"sub": "s-1", "preferred_username": "ben"}, "preferred_username")["uuid"] == "s-1"


@pytest.mark.parametrize("name", ["", "../etc", "a b", "ä", "-lead", "x" * 64])
def test_unusable_account_names_are_refused(name):
    with pytest.raises(oidc.LoginError) as caught:
        oidc.identity({"sub": "s", "preferred_username": name}, "preferred_username")
    assert caught.value.status == 403
