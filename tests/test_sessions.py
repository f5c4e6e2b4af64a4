"""Sessions on a real SQLite file, with the clock passed in."""

import datetime

from iservdesk import db, sessions

NOW = datetime.datetime(2026, 11, 26, 8, 0, tzinfo=datetime.timezone.utc)
POLICY = sessions.Policy(admin_names=("admins", "role_admin"), teacher_names=("teachers",),
                         allowed_names=(), idle_timeout=datetime.timedelta(hours=4),
                         lifetime=datetime.timedelta(hours=12))


def user(groups=(), roles=()):
    return db.User.create(uuid="uuid-%d" % db.User.select().count(), username="u",
                          groups=list(groups), roles=list(roles))


def test_session_id_is_random_and_only_its_hash_is_stored(database):
    owner = user()
    first, second = sessions.create(owner, POLICY, NOW), sessions.create(owner, POLICY, NOW)
    assert first != second and len(first) == 43
    stored = [row.id_hash for row in db.Session.select()]
    assert first not in stored and sessions.digest(first) in stored


def test_session_resolves_until_idle_timeout(database):
    session_id = sessions.create(user(), POLICY, NOW)
    assert sessions.resolve(session_id, POLICY, NOW + datetime.timedelta(hours=3)) is not None
    # Used at +3h: idle time counts from there.
    assert sessions.resolve(session_id, POLICY, NOW + datetime.timedelta(hours=6, minutes=59)) is not None
    assert sessions.resolve(session_id, POLICY, NOW + datetime.timedelta(hours=11)) is None
    assert db.Session.select().count() == 0


def test_session_ends_at_its_lifetime_even_when_used(database):
    session_id = sessions.create(user(), POLICY, NOW)
    for hour in range(1, 12):
        assert sessions.resolve(session_id, POLICY, NOW + datetime.timedelta(hours=hour)) is not None
    assert sessions.resolve(session_id, POLICY, NOW + datetime.timedelta(hours=12)) is None


def test_last_seen_is_written_at_most_once_a_minute(database):
    session_id = sessions.create(user(), POLICY, NOW)
    sessions.resolve(session_id, POLICY, NOW + datetime.timedelta(seconds=30))
    assert db.Session.get().last_seen_at == NOW
    sessions.resolve(session_id, POLICY, NOW + datetime.timedelta(seconds=61))
    assert db.Session.get().last_seen_at == NOW + datetime.timedelta(seconds=61)


def test_unknown_and_oversized_ids_resolve_to_nothing(database):
    assert sessions.resolve("nope", POLICY, NOW) is None
    assert sessions.resolve("x" * 5000, POLICY, NOW) is None


def test_delete_expired_keeps_live_sessions(database):
    owner = user()
    sessions.create(owner, POLICY, NOW - datetime.timedelta(hours=13))
    sessions.create(owner, POLICY, NOW - datetime.timedelta(hours=5))
    live = sessions.create(owner, POLICY, NOW)
    assert sessions.delete_expired(POLICY, NOW) == 2
    assert sessions.resolve(live, POLICY, NOW) is not None


def test_end_is_idempotent(database):
    session_id = sessions.create(user(), POLICY, NOW)
    assert sessions.end(session_id) is not None
    assert sessions.end(session_id) is None


def test_csrf_token_is_bound_to_the_session():
    token = sessions.csrf_token("k" * 32, "session-a")
    assert sessions.csrf_valid("k" * 32, "session-a", token)
    assert not sessions.csrf_valid("k" * 32, "session-b", token)
    assert not sessions.csrf_valid("other-key" * 4, "session-a", token)
    assert not sessions.csrf_valid("k" * 32, "session-a", "")
    assert not sessions.csrf_valid("k" * 32, "session-a", None)


def test_roles_come_from_groups_or_role_ids(database):
    assert POLICY.is_admin(user(groups=["admins"]))
    assert POLICY.is_admin(user(roles=["role_admin"]))
    assert POLICY.is_teacher(user(groups=["teachers"]))
    student = user(groups=["klasse-7a"])
    assert not POLICY.is_admin(student) and not POLICY.is_teacher(student)


def test_allowed_groups_let_admins_in(database):
    policy = sessions.Policy(("admins",), (), ("klasse-7a",), POLICY.idle_timeout, POLICY.lifetime)
    assert policy.may_sign_in(user(groups=["klasse-7a"]))
    assert policy.may_sign_in(user(groups=["admins"]))
    assert not policy.may_sign_in(user(groups=["klasse-8b"]))


def test_group_and_role_names_match_case_insensitively(database):
    policy = sessions.Policy(("Admins", "ROLE_ADMIN"), ("Teachers",), ("Klasse-7A",),
                             POLICY.idle_timeout, POLICY.lifetime)
    assert policy.is_admin(user(groups=["admins"]))
    assert policy.is_admin(user(roles=["Role_Admin"]))
    assert policy.is_teacher(user(groups=["TEACHERS"]))
    assert policy.may_sign_in(user(groups=["klasse-7a"]))
    assert not policy.may_sign_in(user(groups=["klasse-7b"]))


def test_cookie_names_are_host_prefixed_under_https():
    assert sessions.cookie_name(secure=False) == "iservdesk_session"
    assert sessions.cookie_name(secure=True) == "__Host-iservdesk_session"
    assert sessions.cookie_name(True, "iservdesk_login") == "__Host-iservdesk_login"
    assert sessions.cookie_name(False, "iservdesk_login") == "iservdesk_login"
