# Shared by the benchmark scripts: build, free ports, the nginx reference,
# wrk runs parsed into figures. Source it; needs wrk and nginx (make deps).

BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tandem-bench.XXXXXX")
BENCH_PIDS=""

bench_cleanup() {
    for p in $BENCH_PIDS; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT INT TERM

bench_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_build() {
    sh "$BENCH_ROOT/scripts/deps.sh" bench >/dev/null
    make -C "$BENCH_ROOT" -s tandem >/dev/null
    TANDEM="$BENCH_ROOT/tandem"
}

bench_wait_http() { # url
    i=0
    until curl -s -o /dev/null "$1"; do
        i=$((i + 1))
        [ $i -lt 200 ] || { echo "bench: $1 did not come up" >&2; exit 1; }
        sleep 0.05
    done
}

# Starts nginx serving a small static JSON reply on a free port; sets NGINX_PORT.
bench_start_nginx() {
    NGINX_PORT=$(bench_free_port)
    mkdir -p "$BENCH_TMP/nginx/logs"
    cat >"$BENCH_TMP/nginx/nginx.conf" <<CONF
worker_processes auto;
daemon off;
pid $BENCH_TMP/nginx/nginx.pid;
error_log $BENCH_TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $BENCH_TMP/nginx/body;
    server {
        listen 127.0.0.1:$NGINX_PORT reuseport;
        location / {
            default_type application/json;
            return 200 '{"accepted":1,"duplicates":0,"refused":0,"results":[{"index":0,"status":"accepted","seq":1}]}';
        }
    }
}
CONF
    /usr/sbin/nginx -c "$BENCH_TMP/nginx/nginx.conf" -p "$BENCH_TMP/nginx" &
    BENCH_PIDS="$BENCH_PIDS $!"
    bench_wait_http "http://127.0.0.1:$NGINX_PORT/"
}

# Runs wrk; prints "REQS_PER_S P50_MS P99_MS" (latencies in milliseconds).
# Usage: bench_wrk URL SECONDS CONNECTIONS [LUA_SCRIPT]
bench_wrk() {
    script=""
    [ -z "${4:-}" ] || script="-s $4"
    # shellcheck disable=SC2086
    wrk -t 1 -c "$3" -d "${2}s" --latency $script "$1" >"$BENCH_TMP/wrk.out" 2>&1
    awk '
        function ms(v) {
            if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
            if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
            if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
            return v
        }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        $1 == "Requests/sec:" { rps = $2 }
        /Non-2xx/ { non2xx = $NF }
        END {
            if (non2xx > 0) printf "bench: %d non-2xx replies\n", non2xx > "/dev/stderr"
            printf "%.0f %.3f %.3f\n", rps, p50, p99
        }' "$BENCH_TMP/wrk.out"
}

bench_ratio() { # a b -> a/b with 2 decimals
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}
