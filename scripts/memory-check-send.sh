#!/usr/bin/env bash
# Memory check for sending (a measurement, not a timed test): send a 100 MB
# message with the release `send` through the real submission server
# (Dovecot's, relaying to smtp-sink) over implicit TLS, and require the
# process's peak resident memory to stay under 16 MB. Needs
# `scripts/submission.sh start` first.
#
#   scripts/memory-check-send.sh   prints "PEAK_RSS_KB <n>" and passes or fails
#
# The message is made by this script in a temporary file (headers, then
# 100 MiB of 76-byte lines, every 50th led by a dot) and given to `send`
# on stdin. The peak is GNU time's maximum resident set size of the send
# process itself. The sink's copy is checked for size, then removed.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${POP3_SUBMISSION_DIR:-/tmp/pop3-submission}
LIMIT_KB=${LIMIT_KB:-16384}
[ -s "$DIR/env" ] || { echo "memory-check-send: the submission server is not running (scripts/submission.sh start)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$DIR/env"
if [ ! -x /usr/bin/time ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
fi
cargo build --release --example send -q
TARGET=${CARGO_TARGET_DIR:-target}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
python3 - "$OUT/message.eml" <<'PY'
import sys
line = b"A 100 MB message, sent in bounded memory by the client. 0123456789 abcdefg\r\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"From: smtptest@example.org\r\nTo: big@example.net\r\nSubject: 100 MB\r\n\r\n")
    block = b"".join((b"." if i % 50 == 0 else b"") + line for i in range(14000))
    written = 0
    while written < 100 * 1024 * 1024:
        f.write(block)
        written += len(block)
PY
sent=$(stat -c %s "$OUT/message.eml")
recipient="memcheck-$$@example.net"
export POP3_MEMCHECK_PASSWORD="$password"
/usr/bin/time -f "PEAK_RSS_KB %M" -o "$OUT/rss" \
    "$TARGET/release/examples/send" --host "$host" --port "$tls_port" --security tls \
    --user "$user" --password-env POP3_MEMCHECK_PASSWORD --ca-file "$ca_file" --timeout 120 \
    --from smtptest@example.org --to "$recipient" <"$OUT/message.eml" \
    >"$OUT/stdout" 2>"$OUT/stderr" || { cat "$OUT/stderr" >&2; echo "memory-check-send: send failed" >&2; exit 1; }
peak=$(awk '/^PEAK_RSS_KB/ {print $2}' "$OUT/rss")
# The sink's copy: the file whose envelope names this run's recipient.
envelope=$(grep -lx "$recipient" "$sink_dir"/new/*.envelope | head -n 1 || true)
[ -n "$envelope" ] || { echo "memory-check-send: nothing reached the sink" >&2; exit 1; }
arrived=$(stat -c %s "${envelope%.envelope}.eml")
rm -f "${envelope%.envelope}.eml" "$envelope"
cat "$OUT/rss"
echo "memory-check-send: sent $sent bytes ($(cat "$OUT/stdout")); $arrived reached the sink; peak RSS $peak KB (limit $LIMIT_KB KB)"
if [ "$arrived" -lt "$sent" ]; then
    echo "memory-check-send: the message did not arrive whole" >&2
    exit 1
fi
if [ "$peak" -ge "$LIMIT_KB" ]; then
    echo "memory-check-send: FAILED, peak resident memory over the limit" >&2
    exit 1
fi
