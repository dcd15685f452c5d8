#!/bin/sh
# Load test of `nivis serve` on loopback: narinfo requests per second with wrk
# (keep-alive, every request a different path of ~1,000, signed on the fly),
# and NAR download rates (uncompressed and zstd) with curl.
#
#   bench/serve.sh [PATHS] [SECONDS] [CONNECTIONS] [BIG TREE]
#       (defaults: 1000, 10, 32, /usr/lib/python3)
#
# Neither nix-serve nor harmonia is packaged here (CppNix 2.8 has no HTTP
# server), so the baseline is nginx (Debian's nginx-light, if installed)
# serving the static cache CppNix writes for the same paths with
# `nix copy --to file://…`: the cost of files alone, with no database, no
# signing and no NAR dumping. Set NIVIS_BIN to use an existing binary instead
# of a release build. Needs wrk and curl.
set -eu
npaths=${1:-1000}
seconds=${2:-10}
connections=${3:-32}
big_tree=${4:-/usr/lib/python3}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${NIVIS_BIN:-}" ]; then
    (cd "$root" && cargo build --release -p nivis >&2)
    NIVIS_BIN=${CARGO_TARGET_DIR:-$root/target}/release/nivis
fi
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install -y wrk)" >&2; exit 1; }
work=$(mktemp -d)
server_pid=""
nginx_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null
    chmod -R u+w "$work" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# A free port on 127.0.0.1, as the kernel picks one.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { i=0; until curl -sf -o /dev/null "$1"; do i=$((i+1)); [ $i -lt 100 ] || { echo "no answer from $1" >&2; exit 1; }; sleep 0.1; done; }

echo "populating a store with $npaths small paths and $big_tree..." >&2
mkdir "$work/files"
i=0
while [ "$i" -lt "$npaths" ]; do
    i=$((i + 1))
    echo "small file $i" > "$work/files/file-$i"
done
# One CppNix call adds them all (and creates the store).
/usr/bin/nix-store --store "$work/store" --add "$work"/files/* > "$work/paths"
big=$(/usr/bin/nix-store --store "$work/store" --add "$big_tree")
big_size=$(/usr/bin/nix-store --store "$work/store" -q --size "$big")
sed 's|^/nix/store/\(.\{32\}\)-.*|/\1.narinfo|' "$work/paths" > "$work/targets"
/usr/bin/nix-store --generate-binary-cache-key bench-serve-1 "$work/secret" "$work/public"

cat > "$work/narinfos.lua" <<'EOF'
-- Cycles through the narinfo URLs listed in $TARGETS, one per request.
local targets = {}
for line in io.lines(os.getenv("TARGETS")) do targets[#targets + 1] = line end
local next_target = math.random(#targets)
request = function()
    next_target = next_target % #targets + 1
    return wrk.format("GET", targets[next_target])
end
EOF

# Runs wrk against $1; prints "requests/s errors".
load() {
    TARGETS="$work/targets" wrk -t2 -c"$connections" -d"${seconds}s" -s "$work/narinfos.lua" "$1" > "$work/wrk.out"
    rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out")
    bad=$(awk '/Non-2xx/ {print $NF} /Socket errors/ {print}' "$work/wrk.out")
    echo "$rps ${bad:-0}"
}

# Best of three downloads of $1 whose NAR is $2 bytes, in NAR MB/s (for a
# compressed NAR, the rate at which the client gets the NAR's contents).
download_rate() {
    best=""
    for _ in 1 2 3; do
        seconds_taken=$(curl -sf -o /dev/null -w '%{time_total}' "$1")
        if [ -z "$best" ] || [ "$(echo "$seconds_taken < $best" | bc)" = 1 ]; then best=$seconds_taken; fi
    done
    echo "scale=0; $2 / $best / 1048576" | bc
}

port=$(free_port)
"$NIVIS_BIN" serve --listen "127.0.0.1:$port" --store "$work/store" --secret-key-file "$work/secret" 2>/dev/null &
server_pid=$!
wait_for "http://127.0.0.1:$port/nix-cache-info"
url="http://127.0.0.1:$port"
# Every narinfo must be served before anything is timed.
first=$(head -n1 "$work/targets")
curl -sf "$url$first" | grep -q '^Sig: bench-serve-1:' || { echo "narinfo not signed" >&2; exit 1; }

echo "narinfos: wrk, 2 threads, $connections connections, ${seconds}s, $npaths paths" >&2
set -- $(load "$url")
nivis_rps=$1
echo "nivis serve:   $nivis_rps requests/s (non-2xx: $2)"

big_hash=$(echo "$big" | sed 's|^/nix/store/\(.\{32\}\)-.*|\1|')
nar_url=$(curl -sf "$url/$big_hash.narinfo" | sed -n 's/^URL: //p')
big_mb=$(echo "scale=1; $big_size / 1048576" | bc)
echo "NAR of $big_tree: $big_mb MB" >&2
echo "nivis serve:   NAR download $(download_rate "$url/$nar_url" "$big_size") MB/s uncompressed"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
server_pid=""

port=$(free_port)
"$NIVIS_BIN" serve --listen "127.0.0.1:$port" --store "$work/store" --secret-key-file "$work/secret" --compression zstd 2>/dev/null &
server_pid=$!
url="http://127.0.0.1:$port"
wait_for "$url/nix-cache-info"
zst_url=$(curl -sf "$url/$big_hash.narinfo" | sed -n 's/^URL: //p')
zst_size=$(curl -sf "$url/$zst_url" | wc -c)
echo "nivis serve:   NAR download $(download_rate "$url/$zst_url" "$big_size") NAR MB/s zstd on the fly ($(echo "scale=1; $zst_size / 1048576" | bc) MB sent for $big_mb MB)"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
server_pid=""

if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
    echo "writing the same paths as a static cache with CppNix for nginx..." >&2
    # shellcheck disable=SC2046
    /usr/bin/nix --extra-experimental-features nix-command copy --store "$work/store" \
        --to "file://$work/cache?compression=none&secret-key=$work/secret" $(cat "$work/paths") "$big" 2>/dev/null
    # nginx's workers run as another user.
    chmod 755 "$work"
    chmod -R a+rX "$work/cache"
    port=$(free_port)
    mkdir -p "$work/nginx"
    cat > "$work/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $work/nginx/pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    server { listen 127.0.0.1:$port; root $work/cache; }
}
EOF
    /usr/sbin/nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
    nginx_pid=$!
    url="http://127.0.0.1:$port"
    wait_for "$url/nix-cache-info"
    set -- $(load "$url")
    nginx_rps=$1
    echo "nginx static: $nginx_rps requests/s (non-2xx: $2)"
    static_nar=$(curl -sf "$url/$big_hash.narinfo" | sed -n 's/^URL: //p')
    echo "nginx static: NAR download $(download_rate "$url/$static_nar" "$big_size") MB/s uncompressed"
    echo "narinfo ratio nivis serve / nginx static files: $(echo "scale=2; $nivis_rps / $nginx_rps" | bc)"
else
    echo "(no nix-serve, harmonia or nginx here: absolute numbers only)"
fi
