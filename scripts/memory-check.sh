#!/usr/bin/env bash
# Memory check (a measurement, not a timed test): fetch a 100 MB message from
# Dovecot with the release `fetch` and require the process's peak resident
# memory to stay under 16 MB. Needs `scripts/dovecot.sh start` first.
#
#   scripts/memory-check.sh            prints "PEAK_RSS_KB <n>" and passes or fails
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${POP3_DOVECOT_DIR:-/tmp/pop3-dovecot}
LIMIT_KB=${LIMIT_KB:-16384}
[ -s "$DIR/env" ] || { echo "memory-check: Dovecot is not running (scripts/dovecot.sh start)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$DIR/env"
cargo build --release --example fetch -q
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export POP3_MEMCHECK_PASSWORD="$password"
python3 - "$OUT" "$LIMIT_KB" "$tls_port" "$big_user" "$ca_file" <<'PY'
import os, resource, subprocess, sys
out, limit, port, user, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
cmd = ["target/release/examples/fetch", "--host", "127.0.0.1", "--port", port, "--user", user,
       "--password-env", "POP3_MEMCHECK_PASSWORD", "--ca-file", ca, "--maildir", os.path.join(out, "Maildir")]
result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(result.stdout.strip())
if result.returncode != 0:
    print(result.stderr, file=sys.stderr)
    sys.exit("memory-check: fetch failed")
files = os.listdir(os.path.join(out, "Maildir", "new"))
size = sum(os.path.getsize(os.path.join(out, "Maildir", "new", f)) for f in files)
print(f"PEAK_RSS_KB {peak_kb}")
print(f"memory-check: fetched {len(files)} message(s), {size} bytes; peak RSS {peak_kb} KB (limit {limit} KB)")
if size < 100 * 1024 * 1024:
    sys.exit("memory-check: the message was not fetched whole")
if peak_kb >= limit:
    sys.exit("memory-check: FAILED, peak resident memory over the limit")
PY
