#!/bin/sh
# Browser tests: the real Adobe Web SDK (npm @adobe/alloy) in Debian's
# chromium, driven by playwright-core, against the tandem binary in $1 over
# HTTPS, and the demo end to end (e2e.test.mjs). Needs `npm ci` here and in
# web/ (scripts/deps.sh test does both); never downloads a browser. Exits
# non-zero on any failure.
set -eu
if [ $# -ne 1 ] || [ ! -x "$1" ]; then
    echo "usage: sh tests/browser/run.sh <path to tandem binary>" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
for m in playwright-core @adobe/alloy @adobe/target-nodejs-sdk; do
    if [ ! -d "$here/node_modules/$m" ]; then
        echo "browser: FAIL, $m is not installed; run: (cd tests/browser && npm ci)" >&2
        exit 1
    fi
done
# a sanitized tandem reports leaks at exit; the test checks its exit status
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
# Target's Delivery API with the real @adobe/target-nodejs-sdk (no browser)
status=0
node "$here/delivery.test.mjs" "$bin" || status=1
node "$here/edge.test.mjs" "$bin" || status=1
# both use cases end to end (the demo shop, journeys, a real SMTP server)
if [ "${E2E:-1}" = 1 ]; then
    node "$here/e2e.test.mjs" "$bin" || status=1
fi
exit $status
