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
