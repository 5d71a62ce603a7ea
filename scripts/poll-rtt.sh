#!/usr/bin/env bash
# An empty poll at a distance: `fetch --state` beside mpop, both polling
# Dovecot's empty `pop3bench` mailbox over TLS through delay-proxy
# (examples/delay_proxy.rs), which holds each chunk the server sends for
# DELAY_MS (default 100): every round trip costs that much more. Each round
# runs both (alternating who goes first) and prints their wall times
# (/usr/bin/time), the ratio fetch/mpop and the round trips each made as
# the proxy counted them (connect included). fetch runs after one warm-up
# poll, so it knows the server (its `STATE.server` file), as a poller does
# from its second poll on. Not run by CI.
#
#   scripts/dovecot.sh start; scripts/poll-rtt.sh        (ROUNDS=5 DELAY_MS=100)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${POP3_DOVECOT_DIR:-/tmp/pop3-dovecot}
ROUNDS=${ROUNDS:-5}
DELAY_MS=${DELAY_MS:-100}
WORK=${POLL_RTT_DIR:-$PWD/target/poll-rtt}
[ -s "$DIR/env" ] || { echo "poll-rtt: Dovecot is not running (scripts/dovecot.sh start)" >&2; exit 1; }
. "$DIR/env"
command -v mpop >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q mpop >/dev/null
[ -x /usr/bin/time ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null

cargo build --release --example fetch --example delay-proxy -q
TARGET=${CARGO_TARGET_DIR:-target}/release/examples
rm -rf "$WORK"
mkdir -p "$WORK/fetch/Maildir" "$WORK/mpop/Maildir"/{new,cur,tmp}
POP3_DOVECOT_DIR=$DIR scripts/dovecot.sh fill "$bench_user" 0

"$TARGET/delay-proxy" --target "$host:$tls_port" --delay-ms "$DELAY_MS" --ttl 3600 >"$WORK/proxy.log" &
PROXY=$!
trap 'kill $PROXY 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^listening: ' "$WORK/proxy.log" && break; sleep 0.1; done
port=$(sed -n 's/^listening: .*:\([0-9]*\)$/\1/p' "$WORK/proxy.log")

export POLL_RTT_PASSWORD="$password"
cat > "$WORK/mpoprc" <<RC
defaults
account bench
host $host
port $port
tls on
tls_starttls off
tls_trust_file $ca_file
auth user
user $bench_user
passwordeval printenv POLL_RTT_PASSWORD
keep on
only_new on
uidls_file $WORK/mpop/uidls
delivery maildir $WORK/mpop/Maildir
RC
chmod 600 "$WORK/mpoprc"

# waits_of: the proxy's count for the connection that just ended.
waits_of() {
    sleep 0.5
    tail -1 "$WORK/proxy.log" | sed -n 's/^waits: //p'
}

poll() {
    case "$1" in
        mpop) /usr/bin/time -f %e -o "$WORK/mpop.time" mpop -q -C "$WORK/mpoprc" bench ;;
        fetch) /usr/bin/time -f %e -o "$WORK/fetch.time" "$TARGET/fetch" --host "$host" --port "$port" \
                   --security tls --user "$bench_user" --password-env POLL_RTT_PASSWORD \
                   --ca-file "$ca_file" --maildir "$WORK/fetch/Maildir" --state "$WORK/fetch/state" >/dev/null ;;
    esac
}

echo "poll-rtt: an empty poll of $bench_user at $host:$tls_port (TLS) through a ${DELAY_MS} ms delay; $(mpop --version | head -1)"
poll fetch; waits_of >/dev/null
poll mpop; waits_of >/dev/null
ratios=()
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
        poll mpop; mw=$(waits_of); poll fetch; fw=$(waits_of)
    else
        poll fetch; fw=$(waits_of); poll mpop; mw=$(waits_of)
    fi
    m=$(cat "$WORK/mpop.time"); f=$(cat "$WORK/fetch.time")
    r=$(awk -v f="$f" -v m="$m" 'BEGIN { printf "%.3f", f / m }')
    ratios+=("$r")
    echo "round $round: mpop $m s ($mw round trips), fetch $f s ($fw round trips), fetch/mpop $r"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "poll-rtt: median fetch/mpop $median over $ROUNDS rounds"
