# Helpers the test-server scripts share (sourced, not run).

# apt_install PACKAGE...: installs Debian packages without starting their
# system-wide services (a policy-rc.d that says no, removed afterwards if it
# was ours).
apt_install() {
    local created=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || true
    local status=0
    apt-get install -y -q "$@" >/dev/null || status=$?
    if [ -n "$created" ]; then rm -f /usr/sbin/policy-rc.d; fi
    return "$status"
}

# wait_listening PORT [PIDFILE]: waits up to 10 s for 127.0.0.1:PORT to
# accept a connection (and PIDFILE, if given, to be written).
wait_listening() {
    local port=$1 pidfile=${2:-}
    for _ in $(seq 50); do
        if { [ -z "$pidfile" ] || [ -s "$pidfile" ]; } && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# fill MAILDIR N [SIZE]: the Maildir's messages (new/ and cur/) are replaced
# by N new ones, each written in tmp/ and renamed into new/, so Dovecot never
# sees half a file. Dovecot's own index files (dovecot-uidlist...) stay, so the
# UIDs of new messages never repeat those of removed ones.
fill_maildir() {
    python3 - "$1" "$2" "${3:-0}" <<'PY'
import os, sys, time
maildir, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for sub in ("new", "cur", "tmp"):
    os.makedirs(os.path.join(maildir, sub), exist_ok=True)
for sub in ("new", "cur", "tmp"):
    for name in os.listdir(os.path.join(maildir, sub)):
        os.remove(os.path.join(maildir, sub, name))
stamp = time.time_ns()
state = stamp & 0xFFFFFFFF or 1
def rand():
    # xorshift32: varied but reproducible within one fill
    global state
    state ^= (state << 13) & 0xFFFFFFFF
    state ^= state >> 17
    state ^= (state << 5) & 0xFFFFFFFF
    return state
texts = [
    b"The quick brown fox jumps over the lazy dog.",
    "Gr\u00fc\u00dfe aus K\u00f6ln, na\u00efve caf\u00e9, \u65e5\u672c\u8a9e \U0001F600".encode(),
    bytes(range(0x80, 0xC0)),
    b".a line that starts with a dot",
    b"..two dots",
    b".",
    b"From the start of a line",
    b"",
]
for i in range(count):
    head = (
        f"From: sender{i}@example.com\r\nTo: sync@localhost\r\n"
        f"Message-ID: <{stamp}.{i}@pop3.test>\r\nSubject: sync {i} of {count}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode()
    target = size if size > 0 else 200 + rand() % 50000
    body = bytearray()
    while len(head) + len(body) < target:
        line = texts[rand() % len(texts)]
        body += line[: max(0, target - len(head) - len(body) - 2)] + b"\r\n"
    data = head + bytes(body)
    name = f"{stamp // 10**9}.M{i}P{os.getpid()}Q{stamp % 10**9}.fill"
    tmp = os.path.join(maildir, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(maildir, "new", name))
PY
}

# stop_dovecot DIR [HELPER...]: stops what a server script started under
# DIR, by PID, never by name: the Dovecot master (DIR/run/master.pid,
# waited for up to 5 s), each helper's process (DIR/HELPER.pid), and the
# watchdog's process group (DIR/watchdog.pid); then removes DIR/env.
stop_dovecot() {
    local dir=$1
    shift
    if [ -s "$dir/run/master.pid" ]; then
        local pid
        pid=$(cat "$dir/run/master.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    local helper
    for helper in "$@"; do
        if [ -s "$dir/$helper.pid" ]; then
            kill "$(cat "$dir/$helper.pid")" 2>/dev/null || true
            rm -f "$dir/$helper.pid"
        fi
    done
    if [ -s "$dir/watchdog.pid" ]; then
        kill -- -"$(cat "$dir/watchdog.pid")" 2>/dev/null || true
        rm -f "$dir/watchdog.pid"
    fi
    rm -f "$dir/env"
}
