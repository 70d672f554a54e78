#!/usr/bin/env bash
# Make sure the servers the tests use are up: MariaDB on 127.0.0.1:3306.
# The project's own stand-ins (Kubernetes sites, gateway, Elasticsearch) are
# started by the tests themselves.
set -euo pipefail
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! port_open 3306; then
    if command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]]; then
        echo "[services] starting MariaDB"
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
        for _ in $(seq 1 60); do port_open 3306 && break; sleep 0.5; done
    fi
fi
if ! port_open 3306; then
    echo "error: MariaDB is not reachable on 127.0.0.1:3306; start it (e.g. 'start-stop-daemon --start --background --exec /usr/sbin/mariadbd')" >&2
    exit 1
fi
