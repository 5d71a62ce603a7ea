#!/usr/bin/env bash
# A real GNU Mailutils pop3d (Debian's mailutils-pop3d, 3.15 on Debian 12) on
# 127.0.0.1 for the interop tests, beside Dovecot (scripts/dovecot.sh).
#
#   scripts/mailutils.sh install   apt-get install mailutils-pop3d (no service started)
#   scripts/mailutils.sh start     configure and start it under $POP3_MAILUTILS_DIR (default /tmp/pop3-mailutils)
#   scripts/mailutils.sh stop      stop it (by the PIDs in its pidfiles, never by name)
#
# `start` writes $POP3_MAILUTILS_DIR/env, which the tests read: ports, users,
# CA file, and the corpus as the server must serve it. Ports: 2110 (plain +
# STLS) and 2995 (implicit TLS); 2111 (plain + STLS) is a second instance with
# `login-delay 30`. Users (log in as NAME@localhost, password "s3cret-pass"):
#   pop3mbox     the corpus in an mbox (mboxrd: body lines starting "From " stored as ">From ")
#   pop3maildir  the corpus in a Maildir (LF line ends: Mailutils loses a CRLF file's header)
#   pop3lock     one message, for the [IN-USE] test
#   pop3delay    one message, on the login-delay instance
#   pop3rewrite  five messages with Message-IDs, for the sync's deletions after pop3d rewrites them
# Both instances stop by themselves after $POP3_MAILUTILS_TTL seconds (default 5400).
#
# What Mailutils does to the mail (the tests allow for it): LF becomes CRLF on
# the wire; RETR adds an X-UIDL header; QUIT rewrites the mailbox even when no
# mail is deleted (Status:, X-UID:, X-IMAPbase: headers in the mbox, Maildir
# files renamed into cur/), so those headers are served afterwards; mboxrd
# quoting is undone.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

DIR=${POP3_MAILUTILS_DIR:-/tmp/pop3-mailutils}
TTL=${POP3_MAILUTILS_TTL:-5400}
PLAIN_PORT=2110
TLS_PORT=2995
DELAY_PORT=2111
PASSWORD=s3cret-pass
DOMAIN=localhost
# The unprivileged account pop3d switches to after login; it owns the mail.
MAIL_UID=$(id -u mail)
MAIL_GID=$(id -g mail)

install() {
    if command -v pop3d >/dev/null && pop3d --version 2>/dev/null | grep -q Mailutils; then
        return 0
    fi
    apt_install mailutils-pop3d openssl
}

corpus() {
    # $1: home of the mbox user, $2: home of the Maildir user, $3: where the
    # expected bytes go (CRLF, one file per message, as served).
    python3 - "$1" "$2" "$3" <<'PY'
import os, sys
mbox_home, maildir_home, expected = sys.argv[1:4]
def hdr(i, subject):
    return f"From: sender{i}@example.com\nTo: pop3test@localhost\nMessage-ID: <{i}@pop3.test>\nSubject: {subject}\n".encode()
line = b"0123456789 The quick brown fox jumps over the lazy dog, again and again.\n"
big = bytearray()
i = 0
while len(big) < 1024 * 1024:
    big += (b"." if i % 50 == 0 else b"") + line
    i += 1
messages = [
    hdr(1, "plain") + b"\nHello, world.\n",
    hdr(2, "8-bit") + b"Content-Transfer-Encoding: 8bit\n\n"
        + "Grüße aus Köln, naïve café, 日本語 😀\n".encode() + bytes(range(0x80, 0x100)) + b"\n",
    hdr(3, "dots") + b"\n.one leading dot\n..two\n.\n...\nend.\n",
    hdr(4, "long lines") + b"\n" + (b"L" * 5000 + b"\n") * 3 + b"x" * 70000 + b"\n",
    hdr(5, "From lines") + b"\nFrom the start of a line\n>From already quoted\nnot From here\n",
    hdr(6, "1 MB") + b"\n" + bytes(big),
]
os.makedirs(expected, exist_ok=True)
for n, m in enumerate(messages, 1):
    with open(os.path.join(expected, f"{n}.eml"), "wb") as f:
        f.write(m.replace(b"\n", b"\r\n"))
def mboxrd(m):
    out = []
    for l in m.split(b"\n"):
        s = l.lstrip(b">")
        out.append(b">" + l if s.startswith(b"From ") else l)
    return b"\n".join(out)
os.makedirs(mbox_home, exist_ok=True)
with open(os.path.join(mbox_home, "INBOX"), "wb") as f:
    for n, m in enumerate(messages, 1):
        f.write(b"From sender%d@example.com Mon Nov 30 10:00:%02d 2026\n" % (n, n))
        f.write(mboxrd(m) + b"\n")
inbox = os.path.join(maildir_home, "INBOX")
for sub in ("new", "cur", "tmp"):
    os.makedirs(os.path.join(inbox, sub), exist_ok=True)
for n, m in enumerate(messages, 1):
    with open(os.path.join(inbox, "new", f"10000000{n:02d}.M1P1Q{n}.test"), "wb") as f:
        f.write(m)
PY
}

one_message_mbox() {
    mkdir -p "$1"
    printf 'From sender@example.com Mon Nov 30 10:00:00 2026\nFrom: sender@example.com\nSubject: %s\n\nOne message.\n\n' "$2" > "$1/INBOX"
}

rewrite_mbox() {
    # $1: home. Five messages with Message-ID and Date, for the sync's
    # deletion test: pop3d rewrites Status:/X-UID: at QUIT, so every size it
    # lists changes after the first session.
    mkdir -p "$1"
    : > "$1/INBOX"
    for n in 1 2 3 4 5; do
        printf 'From sender@example.com Mon Nov 30 10:00:0%s 2026\nFrom: sender@example.com\nMessage-ID: <rewrite-%s@example.com>\nDate: Mon, 30 Nov 2026 10:00:0%s +0000\nSubject: rewrite %s\n\nMessage %s.\n\n' "$n" "$n" "$n" "$n" "$n" >> "$1/INBOX"
    done
}

config() {
    # $1: name, $2: extra global statements, $3: server blocks
    cat > "$DIR/$1.conf" <<CONF
logging { syslog false; };
auth { authentication generic; authorization virtdomain; };
virtdomain { passwd-dir "$DIR/passwd"; };
pidfile "$DIR/run/$1.pid";
mode daemon;
foreground false;
tcp-wrappers { enable false; };
mandatory-locking { enable true; lock-directory "$DIR/lock"; };
tls { ssl-certificate-file "$DIR/cert.pem"; ssl-key-file "$DIR/key.pem"; };
tls-file-checks { key-file none; cert-file none; ca-file none; };
$2
$3
CONF
}

start_one() {
    local name=$1 port=$2
    pop3d --config-file "$DIR/$name.conf" >"$DIR/$name.log" 2>&1 </dev/null
    if ! wait_listening "$port" "$DIR/run/$name.pid"; then
        echo "mailutils pop3d ($name) did not start:" >&2
        cat "$DIR/$name.log" >&2 || true
        exit 1
    fi
    # Stop by itself, whatever happens to the caller: this instance's PID
    # only, and only if it still runs under that pidfile. `stop` ends the
    # watchdog (its own process group) so none outlives its server.
    local pid
    pid=$(cat "$DIR/run/$name.pid")
    nohup setsid bash -c "sleep $TTL; if [ \"\$(cat '$DIR/run/$name.pid' 2>/dev/null)\" = $pid ]; then rm -f '$DIR/env'; kill $pid; fi" >/dev/null 2>&1 &
    echo $! > "$DIR/run/$name.watchdog"
}

login_once() {
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    read -r -t 5 line <&3
    printf 'USER %s@%s\r\n' "$2" "$DOMAIN" >&3
    read -r -t 5 line <&3
    printf 'PASS %s\r\n' "$PASSWORD" >&3
    read -r -t 5 line <&3
    printf 'QUIT\r\n' >&3
    read -r -t 5 line <&3 || true
    exec 3>&-
}

start() {
    install
    stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
    mkdir -p "$DIR/run" "$DIR/lock" "$DIR/passwd" "$DIR/home"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
        -addext "extendedKeyUsage=serverAuth" \
        -keyout "$DIR/key.pem" -out "$DIR/cert.pem" >/dev/null 2>&1
    corpus "$DIR/home/pop3mbox" "$DIR/home/pop3maildir" "$DIR/expected"
    one_message_mbox "$DIR/home/pop3lock" "locked"
    one_message_mbox "$DIR/home/pop3delay" "delayed"
    rewrite_mbox "$DIR/home/pop3rewrite"
    local hash user
    hash=$(openssl passwd -6 "$PASSWORD")
    : > "$DIR/passwd/$DOMAIN"
    for user in pop3mbox pop3maildir pop3lock pop3delay pop3rewrite; do
        echo "$user:$hash:$MAIL_UID:$MAIL_GID::$DIR/home/$user:/bin/false" >> "$DIR/passwd/$DOMAIN"
    done
    chown -R "$MAIL_UID:$MAIL_GID" "$DIR/home" "$DIR/lock"
    chmod 0755 "$DIR"
    config main "" "server 127.0.0.1:$PLAIN_PORT { tls-mode stls; };
server 127.0.0.1:$TLS_PORT { tls-mode connection; };"
    config delay "login-delay 30;
stat-file \"$DIR/lock/logins.db\";" "server 127.0.0.1:$DELAY_PORT { tls-mode stls; };"
    start_one main "$PLAIN_PORT"
    start_one delay "$DELAY_PORT"
    # pop3d creates its login statistics (GDBM) at the first login, as root
    # but group-readable, then refuses them ("fails safety check") and
    # enforces no delay. So: one login to create them, then make them
    # root's alone. That login may count: pop3delay can be within its delay
    # for 30 s after start (the test allows for it).
    login_once "$DELAY_PORT" pop3delay
    for _ in $(seq 50); do [ -e "$DIR/lock/logins.db" ] && break; sleep 0.1; done
    chown root:root "$DIR/lock/logins.db"
    chmod 0600 "$DIR/lock/logins.db"
    cat > "$DIR/env" <<ENV
host=127.0.0.1
plain_port=$PLAIN_PORT
tls_port=$TLS_PORT
delay_port=$DELAY_PORT
mbox_user=pop3mbox@$DOMAIN
maildir_user=pop3maildir@$DOMAIN
lock_user=pop3lock@$DOMAIN
delay_user=pop3delay@$DOMAIN
rewrite_user=pop3rewrite@$DOMAIN
password=$PASSWORD
ca_file=$DIR/cert.pem
expected=$DIR/expected
ENV
    echo "mailutils pop3d: listening on 127.0.0.1:$PLAIN_PORT (plain+STLS), :$TLS_PORT (TLS), :$DELAY_PORT (login delay); env in $DIR/env"
}

stop() {
    local name pid
    for name in main delay; do
        if [ -s "$DIR/run/$name.watchdog" ]; then
            kill -- "-$(cat "$DIR/run/$name.watchdog")" 2>/dev/null || true
            rm -f "$DIR/run/$name.watchdog"
        fi
        if [ -s "$DIR/run/$name.pid" ]; then
            pid=$(cat "$DIR/run/$name.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
        fi
    done
    rm -f "$DIR/env"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
