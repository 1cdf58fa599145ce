#!/bin/sh
# System packages the tests need, installed only when missing (Debian, as root): Mosquitto for the MQTT tests;
# strace and prlimit for the durability and open-file tests; libfaketime for the clock fault (tests/faults/test_clock.py);
# Chromium and two font families for the browser tests (tests/kits/browser.py drives Debian's chromium through Playwright;
# Playwright's own browser download is never used); PostgreSQL's server for the store tests on PostgreSQL
# (tests/kits/postgres.py starts a private cluster; Debian's package also creates the unprivileged postgres user).
set -eu
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }
missing=""
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$missing mosquitto"
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v strace >/dev/null 2>&1 || missing="$missing strace"    # tests/e2e/test_durability.py: fsync before a file moves
command -v prlimit >/dev/null 2>&1 || missing="$missing util-linux"  # the open-file limit test
installed libfaketime || missing="$missing libfaketime"  # the daemon's clock jumps an hour (LD_PRELOAD)
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
id postgres >/dev/null 2>&1 || case "$missing" in *postgresql*) ;; *) missing="$missing postgresql" ;; esac
for font in fonts-liberation fonts-dejavu-core; do
    installed "$font" || missing="$missing $font"
done
if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
