#!/usr/bin/env bash
# A real Dovecot POP3 server on 127.0.0.1 for the interop tests and the
# memory check.
#
#   scripts/dovecot.sh install   apt-get install dovecot-core dovecot-pop3d (no service started)
#   scripts/dovecot.sh start     configure and start it under $POP3_DOVECOT_DIR (default /tmp/pop3-dovecot)
#   scripts/dovecot.sh stop      stop it (by the PID in its base_dir, never by name)
#   scripts/dovecot.sh fill USER N [SIZE]
#                                replace what USER's Maildir holds by N new messages
#                                (sizes varied up to ~50 KB, or SIZE bytes each), so
#                                tests that empty a mailbox can restore it
#   scripts/dovecot.sh set-password USER PASSWORD
#                                change USER's password on the server (the users file
#                                replaced at once; Dovecot reads it again at the next login)
#
# `start` writes $POP3_DOVECOT_DIR/env, which the tests read: ports, users,
# CA file, Maildirs. Ports: $POP3_DOVECOT_PLAIN_PORT (default 1110, plain +
# STLS) and $POP3_DOVECOT_TLS_PORT (default 1995, implicit TLS), so a second
# instance under another POP3_DOVECOT_DIR can run beside the first. Users:
#   pop3test  / "s3cret-pass"  a corpus of 8-bit, dot-led, long-line, empty and 10 MB messages
#   pop3big   / "s3cret-pass"  one 100 MB message (the memory check)
#   pop3sync  / "s3cret-pass"  300 messages (8-bit, dot-led lines, up to ~50 KB), refilled
#                              by the sync tests with `fill`
#   pop3bench / "s3cret-pass"  empty; scripts/vs-mpop.sh fills it
#   pop3pw    / "s3cret-pass"  a few messages; the web test changes its password with
#                              `set-password` (a password changed at the provider)
#   pop3many000 ... / "s3cret-pass"  $POP3_DOVECOT_MANY (default 160) empty mailboxes for
#                              the many-mailboxes scenarios and benchmarks (mail is dropped
#                              into their Maildirs' new/ by the tests)
# Messages are written in CRLF form with a final CRLF, so Dovecot serves each
# file byte for byte. The server stops by itself after $POP3_DOVECOT_TTL
# seconds (default 5400).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

DIR=${POP3_DOVECOT_DIR:-/tmp/pop3-dovecot}
TTL=${POP3_DOVECOT_TTL:-5400}
MANY=${POP3_DOVECOT_MANY:-160}
PLAIN_PORT=${POP3_DOVECOT_PLAIN_PORT:-1110}
TLS_PORT=${POP3_DOVECOT_TLS_PORT:-1995}
SYNC_COUNT=${POP3_DOVECOT_SYNC_COUNT:-300}
PASSWORD=s3cret-pass

install() {
    if command -v dovecot >/dev/null && [ -e /usr/lib/dovecot/pop3 ]; then
        return 0
    fi
    apt_install dovecot-core dovecot-pop3d openssl
}

corpus() {
    # Messages in CRLF form with a final CRLF, so what Dovecot serves is
    # exactly the file (it converts LF to CRLF and adds a final CRLF otherwise).
    python3 - "$1" "$2" <<'PY'
import os, sys
maildir, which = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(maildir, "new"), exist_ok=True)
os.makedirs(os.path.join(maildir, "cur"), exist_ok=True)
os.makedirs(os.path.join(maildir, "tmp"), exist_ok=True)
def put(name, header, body):
    data = header.encode() + b"\r\n" + body
    with open(os.path.join(maildir, "new", name), "wb") as f:
        f.write(data)
def hdr(i, subject):
    return f"From: sender{i}@example.com\r\nTo: pop3test@localhost\r\nMessage-ID: <{i}@pop3.test>\r\nSubject: {subject}\r\n"
if which == "corpus":
    put("1000000001.M1P1Q1.test", hdr(1, "plain"), b"Hello, world.\r\n")
    put("1000000002.M1P1Q2.test", hdr(2, "8-bit") + "Content-Transfer-Encoding: 8bit\r\n",
        "Grüße aus Köln, naïve café, 日本語 😀\r\n".encode() + bytes(range(0x80, 0x100)) + b"\r\n")
    put("1000000003.M1P1Q3.test", hdr(3, "dots"), b".one leading dot\r\n..two\r\n.\r\n...\r\nend.\r\n")
    put("1000000004.M1P1Q4.test", hdr(4, "long lines"), (b"L" * 5000 + b"\r\n") * 3 + b"x" * 70000 + b"\r\n")
    put("1000000005.M1P1Q5.test", hdr(5, "empty body"), b"")
    line = b"0123456789 The quick brown fox jumps over the lazy dog, again and again.\r\n"
    body = bytearray()
    i = 0
    while len(body) < 10 * 1024 * 1024:
        body += (b"." if i % 50 == 0 else b"") + line
        i += 1
    put("1000000006.M1P1Q6.test", hdr(6, "10 MB"), bytes(body))
else:
    line = b"A 100 MB message, streamed: never held in memory by the client. 0123456789\r\n"
    with open(os.path.join(maildir, "new", "1000000100.M1P1Q1.test"), "wb") as f:
        f.write(hdr(100, "100 MB").encode() + b"\r\n")
        chunk = line * 14000
        written = 0
        while written < 100 * 1024 * 1024:
            f.write(chunk)
            written += len(chunk)
PY
}

fill() {
    local user=${1:-} count=${2:-} size=${3:-0}
    if [ -z "$user" ] || [ -z "$count" ]; then
        echo "usage: $0 fill USER N [SIZE]" >&2
        exit 2
    fi
    if ! grep -q "^$user:" "$DIR/users" 2>/dev/null; then
        echo "dovecot: no user $user under $DIR (scripts/dovecot.sh start first)" >&2
        exit 1
    fi
    local home="$DIR/home/$user"
    fill_maildir "$home/Maildir" "$count" "$size"
    chown -R dovecot:dovecot "$home"
}

set_password() {
    local user=${1:-} password=${2:-}
    if [ -z "$user" ] || [ -z "$password" ] || [[ "$password" == *[:$'\n']* ]]; then
        echo "usage: $0 set-password USER PASSWORD (no colon or newline in it)" >&2
        exit 2
    fi
    if ! grep -q "^$user:" "$DIR/users" 2>/dev/null; then
        echo "dovecot: no user $user under $DIR (scripts/dovecot.sh start first)" >&2
        exit 1
    fi
    # A new file renamed over the old: a login never reads half of it.
    # (Through the environment: awk -v would read backslashes as escapes.)
    USER_NAME="$user" NEW_PASSWORD="$password" awk -F: -v OFS=: \
        '$1 == ENVIRON["USER_NAME"] { $2 = "{PLAIN}" ENVIRON["NEW_PASSWORD"] } { print }' \
        "$DIR/users" > "$DIR/users.new"
    chmod 0644 "$DIR/users.new"
    mv -f "$DIR/users.new" "$DIR/users"
}

start() {
    install
    stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
    mkdir -p "$DIR/run" "$DIR/state" "$DIR/home/pop3test" "$DIR/home/pop3big" \
        "$DIR/home/pop3sync" "$DIR/home/pop3bench" "$DIR/home/pop3pw"
    local uid gid
    uid=$(id -u dovecot)
    gid=$(id -g dovecot)
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
        -addext "extendedKeyUsage=serverAuth" \
        -keyout "$DIR/key.pem" -out "$DIR/cert.pem" >/dev/null 2>&1
    corpus "$DIR/home/pop3test/Maildir" corpus
    if [ "${POP3_DOVECOT_BIG:-1}" = 1 ]; then corpus "$DIR/home/pop3big/Maildir" big; fi
    fill_maildir "$DIR/home/pop3sync/Maildir" "$SYNC_COUNT"
    fill_maildir "$DIR/home/pop3bench/Maildir" 0
    fill_maildir "$DIR/home/pop3pw/Maildir" 3
    cat > "$DIR/users" <<USERS
pop3test:{PLAIN}$PASSWORD:$uid:$gid::$DIR/home/pop3test
pop3big:{PLAIN}$PASSWORD:$uid:$gid::$DIR/home/pop3big
pop3sync:{PLAIN}$PASSWORD:$uid:$gid::$DIR/home/pop3sync
pop3bench:{PLAIN}$PASSWORD:$uid:$gid::$DIR/home/pop3bench
pop3pw:{PLAIN}$PASSWORD:$uid:$gid::$DIR/home/pop3pw
USERS
    local i
    for i in $(seq 0 $((MANY - 1))); do
        i=$(printf '%03d' "$i")
        mkdir -p "$DIR/home/pop3many$i/Maildir/new" "$DIR/home/pop3many$i/Maildir/cur" \
            "$DIR/home/pop3many$i/Maildir/tmp"
        echo "pop3many$i:{PLAIN}$PASSWORD:$uid:$gid::$DIR/home/pop3many$i" >> "$DIR/users"
    done
    cat > "$DIR/dovecot.conf" <<CONF
base_dir = $DIR/run
state_dir = $DIR/state
log_path = $DIR/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <$DIR/cert.pem
ssl_key = <$DIR/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 apop
auth_failure_delay = 0
mail_location = maildir:~/Maildir
default_login_user = dovecot
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = 1
# Many mailboxes polled at once (the many-workers scenarios, benchmarks).
default_process_limit = 1100
default_client_limit = 4000
mail_max_userip_connections = 20
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DIR/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $DIR/users
}
service pop3-login {
  chroot =
  user = dovecot
  inet_listener pop3 {
    port = $PLAIN_PORT
  }
  inet_listener pop3s {
    port = $TLS_PORT
    ssl = yes
  }
}
service anvil {
  chroot =
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  user = dovecot
}
service auth-worker {
  user = dovecot
}
CONF
    chown -R dovecot:dovecot "$DIR/home" "$DIR/state"
    chmod 0644 "$DIR/key.pem" "$DIR/users"
    chmod 0755 "$DIR"
    dovecot -c "$DIR/dovecot.conf" 2>"$DIR/stderr.log" </dev/null
    if ! wait_listening "$PLAIN_PORT" "$DIR/run/master.pid"; then
        echo "dovecot did not start:" >&2
        cat "$DIR/stderr.log" "$DIR/dovecot.log" >&2 || true
        exit 1
    fi
    # Stop by itself, whatever happens to the caller.
    nohup setsid bash -c "sleep $TTL; rm -f '$DIR/env'; kill \$(cat '$DIR/run/master.pid') 2>/dev/null" >/dev/null 2>&1 &
    cat > "$DIR/env" <<ENV
host=127.0.0.1
plain_port=$PLAIN_PORT
tls_port=$TLS_PORT
user=pop3test
big_user=pop3big
password=$PASSWORD
ca_file=$DIR/cert.pem
maildir=$DIR/home/pop3test/Maildir
sync_user=pop3sync
sync_maildir=$DIR/home/pop3sync/Maildir
sync_count=$SYNC_COUNT
bench_user=pop3bench
bench_maildir=$DIR/home/pop3bench/Maildir
password_change_user=pop3pw
many_users=$MANY
many_prefix=pop3many
many_home=$DIR/home
fill_script=$(cd "$(dirname "$0")" && pwd)/dovecot.sh
ENV
    echo "dovecot: listening on 127.0.0.1:$PLAIN_PORT (plain+STLS) and :$TLS_PORT (TLS); env in $DIR/env"
}

stop() {
    if [ -s "$DIR/run/master.pid" ]; then
        local pid
        pid=$(cat "$DIR/run/master.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$DIR/env"
    fi
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    fill) shift; fill "$@" ;;
    set-password) shift; set_password "$@" ;;
    *) echo "usage: $0 install|start|stop|fill USER N [SIZE]|set-password USER PASSWORD" >&2; exit 2 ;;
esac
