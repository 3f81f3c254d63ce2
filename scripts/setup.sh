#!/bin/sh
# Installs everything hastack needs on a Debian 12 machine, as root: the Debian packages of the
# daemons the lab runs and whose validators check rendered files, and a Python venv in .venv
# with hastack installed. Idempotent: a second run installs nothing new.
#
# The daemons' packages would normally start their services on install; a temporary
# policy-rc.d forbids that, because hastack runs them only inside lab nodes.
#
# --browser also installs Debian's chromium, which only the tests that open the HTML report
# in a headless browser need (tests/browser.py); they are skipped without it.
set -eu

browser=""
for arg in "$@"; do
    case "$arg" in
        --browser) browser=chromium ;;
        *) echo "setup.sh: unknown option $arg (known: --browser)" >&2; exit 2 ;;
    esac
done

here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.venv"

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: must run as root (it installs Debian packages)" >&2
    exit 2
fi

packages="python3 python3-venv python3-pip iproute2 nftables procps psmisc util-linux rsync socat
    haproxy keepalived corosync pacemaker pacemaker-cli-utils fence-agents resource-agents
    mariadb-server mariadb-client mariadb-backup galera-4 galera-arbitrator-4
    rabbitmq-server memcached redis-server redis-sentinel supervisor $browser"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

if [ -n "$missing" ]; then
    echo "setup.sh: installing Debian packages:$missing"
    policy=/usr/sbin/policy-rc.d
    saved=""
    if [ -e "$policy" ]; then saved=$(mktemp); cp -p "$policy" "$saved"; fi
    restore_policy() {
        if [ -n "$saved" ]; then mv "$saved" "$policy"; else rm -f "$policy"; fi
    }
    trap restore_policy EXIT INT TERM
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
    restore_policy
    trap - EXIT INT TERM
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "setup.sh: creating $venv"
    python3 -m venv "$venv"
fi
stamp="$venv/.hastack-installed"
if [ ! -e "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
    echo "setup.sh: installing hastack into $venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -e "$here[test,lab,ansible]"
    touch "$stamp"
fi
echo "setup.sh: ready ($venv/bin/hastack)"
