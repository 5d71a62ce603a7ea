#!/usr/bin/env bash
# End to end beside mpop (a measurement, not a test; not run by CI).
#
#   scripts/vs-mpop.sh            needs `scripts/dovecot.sh start` first (same POP3_DOVECOT_DIR)
#
# Fills Dovecot's pop3bench user with $COUNT messages of $SIZE bytes (2,000 of
# 20 KB), then, for $ROUNDS rounds in alternating order, fetches the whole
# mailbox with mpop (a UID file, Maildir delivery, keep on) and with the
# release `fetch --state` (a state file, Maildir delivery, keep on the
# server), each from an empty Maildir and empty state, over implicit TLS to
# the same server and into the same filesystem, which must be a disk (not
# tmpfs). Prints each wall time (GNU time's %e), the median of the per-round
# ratios fetch/mpop, checks that both delivered $COUNT files, and, with
# strace, counts each one's fsync/fdatasync/syncfs calls in one more run.
#
# Every run delivers into a directory of its own, all removed at the end, not
# between runs, and their parent is marked `chattr +T` (ext4's Orlov
# allocator then spreads them over block groups): this disk's ext4 runs
# without a journal, and there the inode allocator skips inodes freed in the
# last 60 s (360 s while their table block is dirty), so creating files in
# a block group where thousands were just deleted costs 0.5 to 2 ms each
# instead of ~50 us, for whichever program comes next.
#
# Environment: POP3_DOVECOT_DIR (default /tmp/pop3-dovecot), ROUNDS (5),
# COUNT (2000), SIZE (20480), VS_MPOP_DIR (default target/vs-mpop in the
# repository: a disk here), OTHER_FETCH (another `fetch` binary, e.g. one
# built before a change, timed in the same rounds: "other").
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${POP3_DOVECOT_DIR:-/tmp/pop3-dovecot}
ROUNDS=${ROUNDS:-5}
COUNT=${COUNT:-2000}
SIZE=${SIZE:-20480}
WORK=${VS_MPOP_DIR:-$PWD/target/vs-mpop}
[ -s "$DIR/env" ] || { echo "vs-mpop: Dovecot is not running (scripts/dovecot.sh start)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$DIR/env"
[ -n "${bench_user:-}" ] || { echo "vs-mpop: $DIR/env has no bench_user: restart Dovecot with this script's dovecot.sh" >&2; exit 1; }

need() {
    command -v "$1" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
}
need mpop mpop
need strace strace
[ -x /usr/bin/time ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null

cargo build --release --example fetch -q
FETCH=${CARGO_TARGET_DIR:-target}/release/examples/fetch

mkdir -p "$WORK"
rm -rf "$WORK"/runs.*
fstype=$(stat -f -c %T "$WORK")
case "$fstype" in
    tmpfs|ramfs) echo "vs-mpop: $WORK is on $fstype; give VS_MPOP_DIR on a disk" >&2; exit 1 ;;
esac

POP3_DOVECOT_DIR=$DIR scripts/dovecot.sh fill "$bench_user" "$COUNT" "$SIZE"

export VS_MPOP_PASSWORD="$password"
cat > "$WORK/mpoprc" <<RC
defaults
account bench
host $host
port $tls_port
tls on
tls_starttls off
tls_trust_file $ca_file
auth user
user $bench_user
passwordeval printenv VS_MPOP_PASSWORD
keep on
only_new on
received_header off
uidls_file @OUT@/uidls
delivery maildir @OUT@/Maildir
RC
chmod 600 "$WORK/mpoprc"

RUNS=$WORK/runs.$$
mkdir -p "$RUNS"
chattr +T "$RUNS" 2>/dev/null || true
trap 'rm -rf "$RUNS"' EXIT

# run NAME [WRAPPER...]: one fetch by NAME (mpop or fetch) into a new, empty
# Maildir with an empty UID file or state.
run_one() {
    local name=$1
    shift
    local out
    out=$(mktemp -d "$RUNS/$name.XXXXXX")
    mkdir -p "$out/Maildir/new" "$out/Maildir/cur" "$out/Maildir/tmp"
    # Other processes' dirty pages are written now, not during the run.
    sync
    case "$name" in
        mpop) sed "s|@OUT@|$out|" "$WORK/mpoprc" > "$out/mpoprc"
              chmod 600 "$out/mpoprc"
              "$@" mpop -q -C "$out/mpoprc" bench ;;
        fetch|other) "$@" "$([ "$name" = other ] && echo "$OTHER_FETCH" || echo "$FETCH")" --host "$host" --port "$tls_port" --security tls --user "$bench_user" \
                --password-env VS_MPOP_PASSWORD --ca-file "$ca_file" \
                --maildir "$out/Maildir" --state "$out/state" >/dev/null 2>"$out/stderr" ;;
    esac
    local n
    n=$(find "$out/Maildir/new" -type f | wc -l)
    if [ "$n" -ne "$COUNT" ]; then
        echo "vs-mpop: $name delivered $n files, not $COUNT" >&2
        exit 1
    fi
}

timed() {
    run_one "$1" /usr/bin/time -f %e -o "$WORK/$1.time"
    cat "$WORK/$1.time"
}

echo "vs-mpop: $COUNT messages of $SIZE bytes from $host:$tls_port (TLS) into $WORK ($fstype on $(df --output=source "$WORK" | tail -1))"
echo "vs-mpop: $(mpop --version | head -1); fetch: $FETCH"
OTHER_FETCH=${OTHER_FETCH:-}
ratios=()
mpops=()
fetches=()
others=()
other_ratios=()
for round in $(seq "$ROUNDS"); do
    o=
    if [ $((round % 2)) = 1 ]; then
        m=$(timed mpop); f=$(timed fetch)
        if [ -n "$OTHER_FETCH" ]; then o=$(timed other); fi
    else
        if [ -n "$OTHER_FETCH" ]; then o=$(timed other); fi
        f=$(timed fetch); m=$(timed mpop)
    fi
    r=$(awk -v f="$f" -v m="$m" 'BEGIN { printf "%.3f", f / m }')
    line="round $round: mpop $m s, fetch $f s, fetch/mpop $r"
    mpops+=("$m"); fetches+=("$f"); ratios+=("$r")
    if [ -n "$o" ]; then
        ro=$(awk -v f="$f" -v o="$o" 'BEGIN { printf "%.3f", f / o }')
        line="$line; other $o s, fetch/other $ro"
        others+=("$o"); other_ratios+=("$ro")
    fi
    echo "$line"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "MEDIAN mpop $(median "${mpops[@]}") s"
echo "MEDIAN fetch $(median "${fetches[@]}") s"
echo "RATIO fetch_vs_mpop $(median "${ratios[@]}")"
if [ -n "$OTHER_FETCH" ]; then
    echo "MEDIAN other $(median "${others[@]}") s"
    echo "RATIO fetch_vs_other $(median "${other_ratios[@]}")"
fi

for name in mpop fetch ${OTHER_FETCH:+other}; do
    run_one "$name" strace -f -c -e trace=fsync,fdatasync,syncfs -o "$WORK/$name.strace"
    calls=$(awk '$NF ~ /^(fsync|fdatasync|syncfs)$/ { printf "%s %s  ", $NF, $4 }' "$WORK/$name.strace")
    echo "SYNCS $name ${calls:-none}"
done
