#!/usr/bin/env bash
# A real SMTP submission server on 127.0.0.1 for the interop tests and the
# memory check: Debian's dovecot-submissiond, relaying every accepted
# message to a small sink (examples/smtp_sink.rs) that writes it to a file.
#
#   scripts/submission.sh install   apt-get install dovecot-submissiond (beside dovecot-pop3d; no service started)
#   scripts/submission.sh start     configure and start both under $POP3_SUBMISSION_DIR (default /tmp/pop3-submission)
#   scripts/submission.sh stop      stop both (by their PIDs, never by name)
#
# A Dovecot instance of its own (not scripts/dovecot.sh's POP3 one), so
# either runs without the other. Ports (overridable, for a second run
# beside CI's): $POP3_SUBMISSION_PORT (1587, STARTTLS),
# $POP3_SUBMISSIONS_PORT (1465, implicit TLS), $POP3_SINK_PORT (1525, the
# sink, plain SMTP, no AUTH). User: smtptest / "s3cret-pass" ({PLAIN}, so
# AUTH PLAIN, LOGIN and CRAM-MD5 all work). `start` writes
# $POP3_SUBMISSION_DIR/env, which the tests read: host, ports, user,
# password, CA file, sink folder (messages in sink/new/*.eml, each with a
# .envelope). What Dovecot adds on the way: one `Received:` header at the
# top (the sink adds nothing). Both stop by themselves after
# $POP3_SUBMISSION_TTL seconds (default 5400).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

DIR=${POP3_SUBMISSION_DIR:-/tmp/pop3-submission}
TTL=${POP3_SUBMISSION_TTL:-5400}
STARTTLS_PORT=${POP3_SUBMISSION_PORT:-1587}
TLS_PORT=${POP3_SUBMISSIONS_PORT:-1465}
SINK_PORT=${POP3_SINK_PORT:-1525}
USER_NAME=smtptest
PASSWORD=s3cret-pass

install() {
    scripts/dovecot.sh install
    if [ -e /usr/lib/dovecot/submission ]; then
        return 0
    fi
    apt_install dovecot-submissiond
}

start() {
    install
    stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
    mkdir -p "$DIR/run" "$DIR/state" "$DIR/home/$USER_NAME" "$DIR/sink"
    cargo build --release --example smtp-sink -q
    local target=${CARGO_TARGET_DIR:-target}
    # A copy, so a later build cannot replace the running binary.
    cp "$target/release/examples/smtp-sink" "$DIR/smtp-sink"
    nohup setsid "$DIR/smtp-sink" --port "$SINK_PORT" --dir "$DIR/sink" --ttl "$TTL" \
        >"$DIR/sink.log" 2>&1 </dev/null &
    echo $! > "$DIR/sink.pid"
    if ! wait_listening "$SINK_PORT"; then
        echo "smtp-sink did not start:" >&2
        cat "$DIR/sink.log" >&2 || true
        exit 1
    fi

    local uid gid
    uid=$(id -u dovecot)
    gid=$(id -g dovecot)
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
        -addext "extendedKeyUsage=serverAuth" \
        -keyout "$DIR/key.pem" -out "$DIR/cert.pem" >/dev/null 2>&1
    cat > "$DIR/users" <<USERS
$USER_NAME:{PLAIN}$PASSWORD:$uid:$gid::$DIR/home/$USER_NAME
USERS
    # submission_max_mail_size: the memory check sends 100 MB.
    cat > "$DIR/dovecot.conf" <<CONF
base_dir = $DIR/run
state_dir = $DIR/state
log_path = $DIR/dovecot.log
protocols = submission
listen = 127.0.0.1
hostname = localhost
ssl = yes
ssl_cert = <$DIR/cert.pem
ssl_key = <$DIR/key.pem
auth_mechanisms = plain login cram-md5
auth_failure_delay = 0
mail_location = maildir:~/Maildir
default_login_user = dovecot
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = 1
submission_relay_host = 127.0.0.1
submission_relay_port = $SINK_PORT
submission_relay_trusted = yes
submission_max_mail_size = 200M
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DIR/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $DIR/users
}
service submission-login {
  chroot =
  user = dovecot
  inet_listener submission {
    port = $STARTTLS_PORT
  }
  inet_listener submissions {
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
    if ! wait_listening "$STARTTLS_PORT" "$DIR/run/master.pid"; then
        echo "dovecot (submission) did not start:" >&2
        cat "$DIR/stderr.log" "$DIR/dovecot.log" >&2 || true
        exit 1
    fi
    # Stop by itself, whatever happens to the caller (the sink has --ttl).
    nohup setsid bash -c "sleep $TTL; rm -f '$DIR/env'; kill \$(cat '$DIR/run/master.pid') 2>/dev/null" >/dev/null 2>&1 &
    # Its own process group (setsid), so that stop ends its sleep too.
    echo $! > "$DIR/watchdog.pid"
    cat > "$DIR/env" <<ENV
host=127.0.0.1
starttls_port=$STARTTLS_PORT
tls_port=$TLS_PORT
user=$USER_NAME
password=$PASSWORD
ca_file=$DIR/cert.pem
sink_port=$SINK_PORT
sink_dir=$DIR/sink
ENV
    echo "submission: dovecot on 127.0.0.1:$STARTTLS_PORT (STARTTLS) and :$TLS_PORT (TLS), relaying to the sink on :$SINK_PORT ($DIR/sink); env in $DIR/env"
}

stop() {
    stop_dovecot "$DIR" sink
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
