-- A database as iservdesk 0.1.0 schema version 1 left it (users, sessions, desktops).
PRAGMA user_version = 1;
BEGIN TRANSACTION;
CREATE TABLE desktops (
            id INTEGER NOT NULL PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            desktop_type TEXT NOT NULL,
            name TEXT NOT NULL UNIQUE,
            container_id TEXT,
            host_port INTEGER UNIQUE,
            secret TEXT,
            status TEXT NOT NULL DEFAULT 'new',
            message TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            started_at TEXT,
            last_access_at TEXT
        );
INSERT INTO "desktops" VALUES(1,1,'ubuntu-vscode','max.muster-ubuntu-vscode','3f4e5d6c7b8a',7003,'old-secret','running','','2026-09-01T07:56:00.000000Z','2026-09-01T07:56:02.000000Z','2026-09-01T08:10:00.000000Z');
CREATE TABLE sessions (
            id_hash TEXT NOT NULL PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
INSERT INTO "sessions" VALUES('5d41402abc4b2a76b9719d911017c592a1b2c3d4e5f60718293a4b5c6d7e8f90',1,'2026-09-01T07:55:00.000000Z','2026-09-01T08:10:00.000000Z','2026-09-01T15:55:00.000000Z');
CREATE TABLE users (
            id INTEGER NOT NULL PRIMARY KEY,
            uuid TEXT NOT NULL UNIQUE,
            username TEXT NOT NULL,
            display_name TEXT NOT NULL DEFAULT '',
            email TEXT NOT NULL DEFAULT '',
            roles TEXT NOT NULL DEFAULT '[]',
            groups TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL,
            last_login_at TEXT
        );
INSERT INTO "users" VALUES(1,'7f1c2e0a-3b7d-4c55-9a1e-2f6d8b9c0a11','max.muster','Max Muster','max.muster@school.example','[]','["klasse-7a"]','2026-09-01T07:55:00.000000Z','2026-09-01T07:55:00.000000Z');
CREATE INDEX users_username ON users (username);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE UNIQUE INDEX desktops_user_id_desktop_type ON desktops (user_id, desktop_type);
COMMIT;
