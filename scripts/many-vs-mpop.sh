#!/usr/bin/env bash
# One round over many mailboxes with no new mail: `poller --db --once`
# beside mpop polling the same accounts (`mpop --all-accounts`, one after
# the other, as it does), on the same Dovecot, over TLS, on loopback and
# through a proxy delaying each answer by 10 ms. Not run by CI.
#
#   scripts/many-vs-mpop.sh                   # 1,000 mailboxes, 3 rounds each way
#   MANY=200 ROUNDS=5 scripts/many-vs-mpop.sh
#
# It starts a Dovecot of its own (/tmp/pop3-dovecot-many, ports 3110/3995,
# MANY empty mailboxes), adds every mailbox to a SQLite database with
# `account --db` (twice: directly, and through the proxy), polls each
# once with both programs (so both know the server and what the mailboxes
# hold), then times ROUNDS alternating runs of each with /usr/bin/time.
# Prints per run the wall time of each and their ratio, then:
#   MEDIAN <program> <delay> <seconds>
#   RATIO poller_vs_mpop <delay> <median of the ratios>
#   CPU <delay> poller <s> dovecot <s>   (user+system, per poller round)
#   PEAK_RSS_KB poller <delay> <kB>      (the poller's, at --concurrency N)
#   IN_FLIGHT max <n>                     (the most sessions open at once, sampled by ss)
#   PER_SESSION_KB in_flight <kB>        (peak RSS above an idle poller, per session open at the peak)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
MANY=${MANY:-1000}
PARTS=${PARTS:-timing,memory}
ROUNDS=${ROUNDS:-3}
CONCURRENCY=${CONCURRENCY:-64}
export POP3_DOVECOT_DIR=/tmp/pop3-dovecot-many POP3_DOVECOT_PLAIN_PORT=3110 POP3_DOVECOT_TLS_PORT=3995
export POP3_DOVECOT_MANY=$MANY POP3_DOVECOT_BIG=0
WORK=${WORK:-$PWD/target/many-vs-mpop}

command -v mpop >/dev/null || apt_install mpop
[ -x /usr/bin/time ] || apt_install time
cargo build --release -q -p pop3-examples --example account --example poller --example delay-proxy
BIN=${CARGO_TARGET_DIR:-target}/release/examples

scripts/dovecot.sh start >/dev/null
trap 'scripts/dovecot.sh stop; [ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null; true' EXIT
. "$POP3_DOVECOT_DIR/env"

rm -rf "$WORK"; mkdir -p "$WORK"
PROXY_PORT=3996
start_proxy() {
    [ -n "${PROXY_PID:-}" ] && { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; }
    "$BIN/delay-proxy" --target "127.0.0.1:$tls_port" --port "$PROXY_PORT" --delay-ms "$1" > "$WORK/proxy.out" &
    PROXY_PID=$!
    for _ in $(seq 50); do grep -q listening "$WORK/proxy.out" 2>/dev/null && break; sleep 0.1; done
}
start_proxy 10

export POP3_DB_KEY=$(head -c 32 /dev/urandom | base64)
export MANY_PASSWORD=$password
# Databases (one per delay) and mpop's configurations.
for delay in 0 10; do
    port=$tls_port; [ "$delay" = 10 ] && port=$PROXY_PORT
    seq 0 $((MANY - 1)) | xargs -P 4 -I{} sh -c '
        i=$(printf %03d {}); user='"$many_prefix"'$i
        '"$BIN"'/account --db sqlite:'"$WORK"'/mail-'"$delay"'.db add "m$i" --email "$user@localhost" \
            --host 127.0.0.1 --port '"$port"' --security tls --user "$user" --password-env MANY_PASSWORD \
            --ca-file '"$ca_file"' --outgoing none --owner "o$i" >/dev/null' 
    rc=$WORK/mpoprc-$delay
    : > "$rc"
    for i in $(seq 0 $((MANY - 1))); do
        i=$(printf %03d "$i")
        mkdir -p "$WORK/mpop-$delay/$i/new" "$WORK/mpop-$delay/$i/cur" "$WORK/mpop-$delay/$i/tmp"
        cat >> "$rc" <<RC
account m$i
host 127.0.0.1
port $port
tls on
tls_starttls off
tls_trust_file $ca_file
auth user
user $many_prefix$i
passwordeval printenv MANY_PASSWORD
keep on
only_new on
uidls_file $WORK/mpop-$delay/$i.uidls
delivery maildir $WORK/mpop-$delay/$i

RC
    done
    chmod 600 "$rc"
done

dovecot_cpu() {
    # The master's own CPU and that of its children it has reaped (every
    # login and pop3 process), in clock ticks.
    awk '{ print $14 + $15 + $16 + $17 }' "/proc/$(cat "$POP3_DOVECOT_DIR/run/master.pid")/stat"
}

poll_poller() { "$BIN/poller" --db "sqlite:$WORK/mail-$1.db" --once --concurrency "$CONCURRENCY" --per-host "$CONCURRENCY" --worker-id bench > "$WORK/poller.out"; }
poll_mpop() { mpop -q -C "$WORK/mpoprc-$1" --all-accounts; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "many-vs-mpop: $MANY mailboxes on Dovecot 127.0.0.1:$tls_port (TLS), $(mpop --version | head -1)"
for delay in 0 10; do
    case ",$PARTS," in *,timing,*) ;; *) continue ;; esac
    poll_poller "$delay"; poll_mpop "$delay"    # both know the mailboxes now
    tail -1 "$WORK/poller.out"
    ps=(); ms=(); rs=(); cpus=(); dcpus=()
    for round in $(seq "$ROUNDS"); do
        d0=$(dovecot_cpu)
        /usr/bin/time -f "%e %U %S %M" -o "$WORK/p.time" bash -c "$(declare -f poll_poller); BIN=$BIN WORK=$WORK CONCURRENCY=$CONCURRENCY poll_poller $delay"
        d1=$(dovecot_cpu)
        /usr/bin/time -f "%e" -o "$WORK/m.time" bash -c "$(declare -f poll_mpop); WORK=$WORK poll_mpop $delay"
        read -r p pu psys prss < "$WORK/p.time"; m=$(cat "$WORK/m.time")
        r=$(awk -v p="$p" -v m="$m" 'BEGIN { printf "%.4f", p / m }')
        ps+=("$p"); ms+=("$m"); rs+=("$r")
        cpus+=("$(awk -v u="$pu" -v s="$psys" 'BEGIN { print u + s }')")
        dcpus+=("$(awk -v a="$d0" -v b="$d1" -v hz="$(getconf CLK_TCK)" 'BEGIN { print (b - a) / hz }')")
        echo "delay $delay ms, round $round: poller $p s (cpu $pu+$psys s, peak $prss kB), mpop $m s, poller/mpop $r"
        grep -q ", 0 failed$" "$WORK/poller.out" || { cat "$WORK/poller.out" >&2; exit 1; }
    done
    echo "MEDIAN poller ${delay}ms $(median "${ps[@]}")"
    echo "MEDIAN mpop ${delay}ms $(median "${ms[@]}")"
    echo "RATIO poller_vs_mpop ${delay}ms $(median "${rs[@]}")"
    echo "CPU ${delay}ms poller $(median "${cpus[@]}") dovecot $(median "${dcpus[@]}")"
done

# Memory per session in flight: every mailbox at once, through the same
# proxy port now delaying each answer by 3 s (so every session lasts
# longer than Dovecot takes to accept them all, and they are all open
# together), beside an idle poller's peak (the runtime and the database
# pool, no mailbox). ss counts the sessions open, sampled every 100 ms.
start_proxy 3000
"$BIN/account" --db "sqlite:$WORK/idle.db" list >/dev/null
/usr/bin/time -f "%M" -o "$WORK/idle.time" "$BIN/poller" --db "sqlite:$WORK/idle.db" --once >/dev/null
/usr/bin/time -f "%M" -o "$WORK/all.time" "$BIN/poller" --db "sqlite:$WORK/mail-10.db" --once \
    --concurrency "$MANY" --per-host "$MANY" --timeout 60 --worker-id all > "$WORK/poller.out" &
POLLER_PID=$!
max=0
while kill -0 "$POLLER_PID" 2>/dev/null; do
    n=$(ss -Htn state established "( dport = :$PROXY_PORT )" | wc -l)
    [ "$n" -gt "$max" ] && max=$n
    sleep 0.1
done
wait "$POLLER_PID"
tail -1 "$WORK/poller.out"
idle=$(cat "$WORK/idle.time"); all=$(cat "$WORK/all.time")
echo "PEAK_RSS_KB poller idle $idle in_flight $all"
echo "IN_FLIGHT max $max"
echo "PER_SESSION_KB in_flight $(awk -v a="$all" -v i="$idle" -v n="$max" 'BEGIN { printf "%.1f", (a - i) / n }')"
