#!/usr/bin/env bash
# Dovecot with `passdb oauth2` on 127.0.0.1: POP3 and SMTP submission that
# accept XOAUTH2 and OAUTHBEARER with an access token and nothing else, the
# tokens checked at the introspection endpoint of a fake OAuth2 provider
# (examples/oauth_provider.rs) that runs beside it.
#
#   scripts/oauth.sh install   apt-get install dovecot-core dovecot-pop3d dovecot-submissiond
#   scripts/oauth.sh start     configure and start all three under $POP3_OAUTH_DIR (default /tmp/pop3-oauth)
#   scripts/oauth.sh stop      stop them (by their PIDs, never by name)
#   scripts/oauth.sh fill N    replace what the user's Maildir holds by N new messages
#
# A Dovecot instance of its own, beside scripts/dovecot.sh's and
# scripts/submission.sh's. The provider signs access tokens with a random
# key written to $POP3_OAUTH_DIR/key: a test starts its own provider with
# that key (`FakeProvider::signed`), so it keeps its own grant (rotation,
# revocation) and Dovecot accepts its tokens until they expire. Ports
# (overridable): $POP3_OAUTH_POP3_PORT (1112, plain + STLS),
# $POP3_OAUTH_POP3S_PORT (1997, implicit TLS), $POP3_OAUTH_SUBMISSION_PORT
# (1589, STARTTLS), $POP3_OAUTH_PROVIDER_PORT (1580, plain HTTP),
# $POP3_OAUTH_SINK_PORT (1526, where submission relays). User: oauthtest
# (no password: a token is the only way in). `start` writes
# $POP3_OAUTH_DIR/env, which the tests read. All stop by themselves after
# $POP3_OAUTH_TTL seconds (default 5400).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

DIR=${POP3_OAUTH_DIR:-/tmp/pop3-oauth}
TTL=${POP3_OAUTH_TTL:-5400}
POP3_PORT=${POP3_OAUTH_POP3_PORT:-1112}
POP3S_PORT=${POP3_OAUTH_POP3S_PORT:-1997}
SUBMISSION_PORT=${POP3_OAUTH_SUBMISSION_PORT:-1589}
PROVIDER_PORT=${POP3_OAUTH_PROVIDER_PORT:-1580}
SINK_PORT=${POP3_OAUTH_SINK_PORT:-1526}
USER_NAME=oauthtest

install() {
    scripts/submission.sh install
}

# start_helper NAME PORT ARGS...: a release build of example NAME, copied
# (so a later build cannot replace it) and started in its own session.
start_helper() {
    local name=$1 port=$2
    shift 2
    cargo build --release --example "$name" -q
    local target=${CARGO_TARGET_DIR:-target}
    cp "$target/release/examples/$name" "$DIR/$name"
    nohup setsid "$DIR/$name" "$@" >"$DIR/$name.log" 2>&1 </dev/null &
    echo $! > "$DIR/$name.pid"
    if ! wait_listening "$port"; then
        echo "$name did not start:" >&2
        cat "$DIR/$name.log" >&2 || true
        exit 1
    fi
}

start() {
    install
    stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
    mkdir -p "$DIR/run" "$DIR/state" "$DIR/home/$USER_NAME" "$DIR/sink"
    fill_maildir "$DIR/home/$USER_NAME/Maildir" 0
    openssl rand -hex 32 > "$DIR/key"
    chmod 0600 "$DIR/key"
    start_helper oauth-provider "$PROVIDER_PORT" --port "$PROVIDER_PORT" --key-file "$DIR/key" \
        --user "$USER_NAME" --ttl "$TTL"
    start_helper smtp-sink "$SINK_PORT" --port "$SINK_PORT" --dir "$DIR/sink" --ttl "$TTL"

    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
        -addext "extendedKeyUsage=serverAuth" \
        -keyout "$DIR/tls-key.pem" -out "$DIR/cert.pem" >/dev/null 2>&1
    # The token is checked by a POST of token=... to the provider, which
    # answers {"active":true,"username":...} while it is valid.
    cat > "$DIR/oauth2.conf.ext" <<CONF
introspection_mode = post
introspection_url = http://127.0.0.1:$PROVIDER_PORT/introspect
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
CONF
    cat > "$DIR/dovecot.conf" <<CONF
base_dir = $DIR/run
state_dir = $DIR/state
log_path = $DIR/dovecot.log
protocols = pop3 submission
listen = 127.0.0.1
hostname = localhost
ssl = yes
ssl_cert = <$DIR/cert.pem
ssl_key = <$DIR/tls-key.pem
auth_mechanisms = xoauth2 oauthbearer
auth_failure_delay = 0
mail_location = maildir:~/Maildir
default_login_user = dovecot
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = 1
submission_relay_host = 127.0.0.1
submission_relay_port = $SINK_PORT
submission_relay_trusted = yes
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $DIR/oauth2.conf.ext
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=$DIR/home/%u
}
service pop3-login {
  chroot =
  user = dovecot
  inet_listener pop3 {
    port = $POP3_PORT
  }
  inet_listener pop3s {
    port = $POP3S_PORT
    ssl = yes
  }
}
service submission-login {
  chroot =
  user = dovecot
  inet_listener submission {
    port = $SUBMISSION_PORT
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
    chmod 0644 "$DIR/tls-key.pem" "$DIR/oauth2.conf.ext"
    chmod 0755 "$DIR"
    dovecot -c "$DIR/dovecot.conf" 2>"$DIR/stderr.log" </dev/null
    if ! wait_listening "$POP3_PORT" "$DIR/run/master.pid" || ! wait_listening "$SUBMISSION_PORT"; then
        echo "dovecot (oauth) did not start:" >&2
        cat "$DIR/stderr.log" "$DIR/dovecot.log" >&2 || true
        exit 1
    fi
    # Stop by itself, whatever happens to the caller (the helpers have --ttl).
    nohup setsid bash -c "sleep $TTL; rm -f '$DIR/env'; kill \$(cat '$DIR/run/master.pid') 2>/dev/null" >/dev/null 2>&1 &
    echo $! > "$DIR/watchdog.pid"
    cat > "$DIR/env" <<ENV
host=127.0.0.1
plain_port=$POP3_PORT
tls_port=$POP3S_PORT
submission_port=$SUBMISSION_PORT
user=$USER_NAME
key_file=$DIR/key
introspection_url=http://127.0.0.1:$PROVIDER_PORT/introspect
ca_file=$DIR/cert.pem
maildir=$DIR/home/$USER_NAME/Maildir
sink_dir=$DIR/sink
fill_script=$(pwd)/scripts/oauth.sh
ENV
    echo "oauth: dovecot on 127.0.0.1:$POP3_PORT (POP3, STLS), :$POP3S_PORT (POP3, TLS), :$SUBMISSION_PORT (submission, STARTTLS), tokens introspected at :$PROVIDER_PORT; env in $DIR/env"
}

stop() {
    stop_dovecot "$DIR" oauth-provider smtp-sink
}

fill() {
    local count=${1:-}
    if [ -z "$count" ] || [ ! -s "$DIR/env" ]; then
        echo "usage: $0 fill N (after $0 start)" >&2
        exit 2
    fi
    fill_maildir "$DIR/home/$USER_NAME/Maildir" "$count"
    chown -R dovecot:dovecot "$DIR/home/$USER_NAME"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    fill) fill "${2:-}" ;;
    *) echo "usage: $0 install|start|stop|fill N" >&2; exit 2 ;;
esac
