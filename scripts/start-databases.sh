#!/usr/bin/env bash
# Starts the local PostgreSQL and MariaDB servers the SQL tests use, if they
# are installed and stopped, and waits (bounded) until they answer. On a
# machine without them this says so and returns: the tests then skip the
# PostgreSQL/MariaDB cases (unless CI=true, where they fail instead).
set -uo pipefail

wait_for() { # name, command...
    local name=$1; shift
    for _ in $(seq 1 60); do
        if "$@" >/dev/null 2>&1; then echo "$name is up"; return 0; fi
        sleep 0.5
    done
    echo "warning: $name did not come up" >&2
    return 1
}

if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
        for v in $(ls /etc/postgresql); do
            pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
        done
    fi
    wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
else
    echo "PostgreSQL is not installed here: its tests will be skipped (or fail under CI=true)"
fi

if [ -x /usr/sbin/mariadbd ]; then
    if ! mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1; then
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
    fi
    wait_for MariaDB mariadb-admin -h 127.0.0.1 -uroot ping
else
    echo "MariaDB is not installed here: its tests will be skipped (or fail under CI=true)"
fi
exit 0
