#!/usr/bin/env bash
# Memory check (a measurement, not a timed test): fetch a 100 MB message from
# Dovecot with the release `fetch` and require the process's peak resident
# memory to stay under 16 MB. Needs `scripts/dovecot.sh start` first.
#
#   scripts/memory-check.sh       prints "PEAK_RSS_KB <n>" and passes or fails
#
# The peak is GNU time's maximum resident set size of the fetch process
# itself (a Python parent would add its own pages from before the exec).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${POP3_DOVECOT_DIR:-/tmp/pop3-dovecot}
LIMIT_KB=${LIMIT_KB:-16384}
[ -s "$DIR/env" ] || { echo "memory-check: Dovecot is not running (scripts/dovecot.sh start)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$DIR/env"
if [ ! -x /usr/bin/time ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
fi
cargo build --release --example fetch -q
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export POP3_MEMCHECK_PASSWORD="$password"
/usr/bin/time -f "PEAK_RSS_KB %M" -o "$OUT/rss" \
    target/release/examples/fetch --host "$host" --port "$tls_port" --user "$big_user" \
    --password-env POP3_MEMCHECK_PASSWORD --ca-file "$ca_file" --maildir "$OUT/Maildir" \
    2>"$OUT/stderr" || { cat "$OUT/stderr" >&2; echo "memory-check: fetch failed" >&2; exit 1; }
peak=$(awk '/^PEAK_RSS_KB/ {print $2}' "$OUT/rss")
size=$(find "$OUT/Maildir/new" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
cat "$OUT/rss"
echo "memory-check: fetched $size bytes; peak RSS $peak KB (limit $LIMIT_KB KB)"
if [ "$size" -lt $((100 * 1024 * 1024)) ]; then
    echo "memory-check: the message was not fetched whole" >&2
    exit 1
fi
if [ "$peak" -ge "$LIMIT_KB" ]; then
    echo "memory-check: FAILED, peak resident memory over the limit" >&2
    exit 1
fi
