#!/bin/sh
# Installs what Tandem needs to build, run and test, from Debian's packages
# and npm. Idempotent and quick when everything is there. Needs root (or
# sudo) only when something is missing.
set -eu

BUILD="build-essential pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev
libcurl4-openssl-dev libssl-dev libcsv-dev libxml2-dev libpq-dev libopendkim-dev zlib1g-dev"
TEST="postgresql libcmocka-dev sqlite3 python3 clang libclang-rt-14-dev gnutls-bin chromium nodejs npm
python3-dkim python3-aiosmtpd openssl"
RUN="openssl nodejs npm"
BENCH="wrk nginx-light postfix"

case "${1:-all}" in
build) want="$BUILD" ;;
run) want="$BUILD $RUN" ;;
test) want="$BUILD $RUN $TEST" ;;
bench) want="$BUILD $BENCH" ;;
*) want="$BUILD $RUN $TEST $BENCH" ;;
esac

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
# node and npm may come from elsewhere than Debian; accept any working ones
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    missing=$(echo "$missing" | tr ' ' '\n' | grep -vx -e nodejs -e npm | tr '\n' ' ')
fi
missing=$(echo "$missing" | xargs)
if [ -n "$missing" ]; then
    echo "deps: installing $missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

case "${1:-all}" in
build | bench) exit 0 ;;
esac
# the demo shop serves the real Adobe Web SDK, installed from npm
if [ ! -d web/node_modules/@adobe/alloy ]; then
    echo "deps: npm install (web)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi
[ "${1:-all}" = run ] && exit 0
# browser tests: playwright-core drives Debian's chromium (never a downloaded
# browser); the real Adobe Web SDK comes from npm
if [ -f tests/browser/package.json ] && [ ! -d tests/browser/node_modules ]; then
    echo "deps: npm install (tests/browser)"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
