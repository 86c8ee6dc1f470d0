#!/usr/bin/env bash
# Run a real, throw-away Elasticsearch for development and CI without Docker.
#
# The server comes from Maven Central's "integ-test-zip" distribution (the
# registries reachable here include Maven Central but not Elastic's download
# site or Docker Hub). That distribution is deliberately minimal: no bundled
# JDK and only a handful of modules, so this script supplies a JDK and only
# passes settings the shipped modules understand.
#
# Usage: scripts/elasticsearch.sh fetch|start|stop|status
#
# Only "start" and "status" write to stdout (the ELASTICSEARCH_URL=... line and
# the health JSON); progress messages go to stderr, so CI can do
#   scripts/elasticsearch.sh start >> "$GITHUB_ENV"   or   eval "$(... start)".
#
# Environment overrides (defaults in brackets):
#   ES_VERSION        [9.2.0]
#   ES_PORT           [9200]        HTTP port, bound to 127.0.0.1 only
#   ES_TRANSPORT_PORT [9300-9399]   a range, so ES itself picks a free port
#   ES_HOME_BASE      [.cache/elasticsearch]  relative paths are from the repo root
#   ES_RUN_DIR        [$ES_HOME_BASE/run]     pid file, data, logs, tmp
#   ES_USER           [elasticsearch-ci]      used only when run as root
#   ES_JAVA_HOME      [newest JDK >= 21 under /usr/lib/jvm]
#   ES_JAVA_OPTS      [-Xms512m -Xmx512m]
#   ES_START_TIMEOUT  [120]         seconds to wait for yellow health
#   MAVEN_LOCAL_REPO  [~/.m2/repository]
set -euo pipefail

# Files we create must stay readable by the unprivileged ES user even when the
# caller runs with a restrictive umask.
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

# Resolve relative paths against the repo root, so the script behaves the same
# whatever directory it is invoked from.
abs_path() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$REPO_ROOT/$1" ;;
    esac
}

# The same script runs OpenSearch when scripts/opensearch.sh sets SEARCH_ENGINE=opensearch (it maps
# its OS_* variables onto these): both ship an integ-test zip on Maven Central with the same layout.
case "${SEARCH_ENGINE:-elasticsearch}" in
    elasticsearch)
        ENGINE_NAME=Elasticsearch ENGINE_BIN=elasticsearch ENGINE_GROUP=org.elasticsearch
        ENGINE_MAIN_CLASS=org.elasticsearch.bootstrap.Elasticsearch ENGINE_ENV_PREFIX=ES
        ENGINE_URL_VARIABLE=ELASTICSEARCH_URL DEFAULT_VERSION=9.2.0
        ;;
    opensearch)
        ENGINE_NAME=OpenSearch ENGINE_BIN=opensearch ENGINE_GROUP=org.opensearch
        ENGINE_MAIN_CLASS=org.opensearch.bootstrap.OpenSearch ENGINE_ENV_PREFIX=OPENSEARCH
        ENGINE_URL_VARIABLE=OPENSEARCH_URL DEFAULT_VERSION=2.19.6
        ;;
    *)
        printf 'SEARCH_ENGINE must be elasticsearch or opensearch\n' >&2
        exit 2
        ;;
esac

ES_VERSION="${ES_VERSION:-$DEFAULT_VERSION}"
ES_PORT="${ES_PORT:-9200}"
ES_TRANSPORT_PORT="${ES_TRANSPORT_PORT:-9300-9399}"
ES_USER="${ES_USER:-$ENGINE_BIN-ci}"
ES_START_TIMEOUT="${ES_START_TIMEOUT:-120}"
ES_STOP_TIMEOUT=30
ES_CLUSTER_NAME="search-ci"
ES_HOME_BASE=$(abs_path "${ES_HOME_BASE:-.cache/$ENGINE_BIN}")
ES_HOME="$ES_HOME_BASE/$ENGINE_BIN-$ES_VERSION"
ES_RUN_DIR=$(abs_path "${ES_RUN_DIR:-$ES_HOME_BASE/run}")
# Data is per version: an older server refuses to open a newer one's data directory.
ES_DATA_DIR="$ES_RUN_DIR/data-$ES_VERSION"
ES_LOG_DIR="$ES_RUN_DIR/logs"
ES_TMP_DIR="$ES_RUN_DIR/tmp"
ES_PID_FILE="$ES_RUN_DIR/$ENGINE_BIN.pid"
ES_URL="http://127.0.0.1:$ES_PORT"
HEALTH_URL="$ES_URL/_cluster/health?wait_for_status=yellow&timeout=1s"
# An explicit MAVEN_LOCAL_REPO is also handed to mvn; by default we look where
# Maven puts artifacts unless a settings.xml says otherwise (handled in fetch).
MVN_REPO_ARGS=()
if [[ -n ${MAVEN_LOCAL_REPO:-} ]]; then
    MVN_REPO_ARGS=("-Dmaven.repo.local=$MAVEN_LOCAL_REPO")
fi
MAVEN_LOCAL_REPO="${MAVEN_LOCAL_REPO:-${HOME:?HOME must be set}/.m2/repository}"
ES_ARTIFACT="$ENGINE_GROUP.distribution.integ-test-zip:$ENGINE_BIN:$ES_VERSION:zip"
ES_ZIP_REL="${ENGINE_GROUP//.//}/distribution/integ-test-zip/$ENGINE_BIN/$ES_VERSION/$ENGINE_BIN-$ES_VERSION.zip"

log() { printf '[%s.sh] %s\n' "$ENGINE_BIN" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
is_root() { [[ $EUID -eq 0 ]]; }

# ---------------------------------------------------------------- HTTP helper
# curl is not guaranteed on a fresh machine; python3 is (the project is Python).
http_get() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 10 "$1"
    else
        python3 -c '
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        sys.stdout.write(r.read().decode())
except Exception as e:
    sys.exit("http_get: %s" % e)
' "$1"
    fi
}

# ------------------------------------------------------------- process helpers
# /proc rather than "kill -0": a non-root caller cannot signal the ES user's
# process but can still see it. Zombies count as gone.
proc_alive() {
    local state
    state=$(sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z ]]
}

# Guard against pid reuse: only a live Elasticsearch server JVM counts.
is_es_pid() {
    local cmdline
    proc_alive "$1" || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$ENGINE_MAIN_CLASS"* ]]
}

read_pid() {
    local pid
    [[ -f $ES_PID_FILE ]] || return 1
    pid=$(tr -dc '0-9' <"$ES_PID_FILE")
    [[ -n $pid ]] || return 1
    printf '%s\n' "$pid"
}

# Prints the pid of our running server, fails if there is none.
running_pid() {
    local pid
    pid=$(read_pid) || return 1
    is_es_pid "$pid" || return 1
    printf '%s\n' "$pid"
}

port_in_use() {
    # bash's /dev/tcp avoids depending on ss/netstat/lsof.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# --------------------------------------------------------------------- fetch
ensure_unzip() {
    command -v unzip >/dev/null 2>&1 && return 0
    if is_root && command -v apt-get >/dev/null 2>&1; then
        log "unzip not found; installing it with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends unzip >&2
    else
        die "unzip is required but not installed (e.g. 'sudo apt-get install unzip'), then re-run"
    fi
}

cmd_fetch() {
    if [[ -x $ES_HOME/bin/$ENGINE_BIN ]]; then
        log "$ENGINE_NAME $ES_VERSION already unpacked in $ES_HOME"
        return 0
    fi
    local zip="$MAVEN_LOCAL_REPO/$ES_ZIP_REL"
    if [[ ! -f $zip ]]; then
        command -v mvn >/dev/null 2>&1 || die "mvn is required to download $ES_ARTIFACT"
        log "downloading $ES_ARTIFACT from Maven Central"
        # stdout -> stderr: keep this script's stdout for machine-readable output.
        mvn -q -B "${MVN_REPO_ARGS[@]}" dependency:get -Dartifact="$ES_ARTIFACT" -Dtransitive=false >&2
    fi
    if [[ ! -f $zip ]]; then
        # A settings.xml may move the local repository; ask Maven where it is.
        local repo
        repo=$(mvn -q -B "${MVN_REPO_ARGS[@]}" help:evaluate -Dexpression=settings.localRepository -DforceStdout)
        zip="$repo/$ES_ZIP_REL"
    fi
    [[ -f $zip ]] || die "downloaded artifact not found at $zip"

    ensure_unzip
    mkdir -p "$ES_HOME_BASE"
    # Unpack beside the target and rename at the end, so an interrupted unzip
    # never leaves a half-populated directory that looks installed.
    rm -rf "$ES_HOME_BASE"/.unpack.*
    local tmp
    tmp=$(mktemp -d "$ES_HOME_BASE/.unpack.XXXXXX")
    unzip -q "$zip" -d "$tmp"
    [[ -x $tmp/$ENGINE_BIN-$ES_VERSION/bin/$ENGINE_BIN ]] ||
        die "unexpected archive layout in $zip"
    mv "$tmp/$ENGINE_BIN-$ES_VERSION" "$ES_HOME"
    rmdir "$tmp"
    log "unpacked $ENGINE_NAME $ES_VERSION into $ES_HOME"
}

# ---------------------------------------------------------------------- JDK
# Major Java version of a JDK directory ("1.8.0_x" -> 8, "25.0.1" -> 25).
java_major() {
    local v=""
    if [[ -f $1/release ]]; then
        v=$(sed -n 's/^JAVA_VERSION="\(.*\)"$/\1/p' "$1/release")
    fi
    if [[ -z $v ]]; then
        v=$("$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)
    fi
    v=${v#1.}
    printf '%s\n' "${v%%[!0-9]*}"
}

# ES 9.x needs Java 21+, 8.x needs 17+. The integ-test zip bundles no JDK.
find_java_home() {
    local min=21 max=999 es_major=${ES_VERSION%%.*}
    # OpenSearch 2.x runs on Java 11 to 21 (it still needs the security manager, gone in Java 24),
    # 3.x needs 21+; Elasticsearch 8.x needs 17+, 9.x 21+.
    if [[ $ENGINE_BIN == opensearch ]]; then
        ((es_major >= 3)) || { min=17 max=21; }
    else
        ((es_major >= 9)) || min=17
    fi
    if [[ -n ${ES_JAVA_HOME:-} ]]; then
        [[ -x $ES_JAVA_HOME/bin/java ]] || die "ES_JAVA_HOME=$ES_JAVA_HOME has no bin/java"
        local m
        m=$(java_major "$ES_JAVA_HOME")
        if ! [[ $m =~ ^[0-9]+$ ]] || ((m < min || m > max)); then
            die "ES_JAVA_HOME=$ES_JAVA_HOME is Java '$m'; $ENGINE_NAME $ES_VERSION needs $min to $max"
        fi
        printf '%s\n' "$ES_JAVA_HOME"
        return 0
    fi
    local best="" best_major=0 dir m
    for dir in /usr/lib/jvm/*/ ${JAVA_HOME:+"$JAVA_HOME/"}; do
        dir=${dir%/}
        [[ -x $dir/bin/java ]] || continue
        m=$(java_major "$dir")
        [[ $m =~ ^[0-9]+$ ]] || continue
        if ((m >= min && m <= max && m > best_major)); then
            best=$dir
            best_major=$m
        fi
    done
    [[ -n $best ]] || die "no JDK >= $min found under /usr/lib/jvm; set ES_JAVA_HOME"
    printf '%s\n' "$best"
}

# ------------------------------------------------------------ user handling
# Elasticsearch refuses to run as root, so root (CI) runs it as a dedicated
# system user; a normal developer simply runs it as themselves.
ensure_es_user() {
    is_root || return 0
    [[ $ES_USER != root ]] || die "ES_USER must not be root: $ENGINE_NAME refuses to run as root"
    id -u "$ES_USER" >/dev/null 2>&1 && return 0
    command -v useradd >/dev/null 2>&1 || die "useradd not found; create user '$ES_USER' manually"
    log "creating system user $ES_USER"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$ES_USER"
}

# The account the server runs as.
run_user_name() {
    if is_root; then
        printf '%s\n' "$ES_USER"
    else
        id -un
    fi
}

# Run a command as the ES user (or as ourselves when not root). runuser needs
# no password and no login shell; su is the fallback where it is missing.
as_es_user() {
    if ! is_root; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u "$ES_USER" -- "$@"
    else
        su -s /bin/bash "$ES_USER" -c "$(printf '%q ' "$@")"
    fi
}

prepare_dirs() {
    mkdir -p "$ES_RUN_DIR" "$ES_DATA_DIR" "$ES_LOG_DIR" "$ES_TMP_DIR"
    if is_root; then
        # ES writes its keystore into config/, plus data, logs and the pid
        # file. Re-chown every start so nothing root-owned (e.g. from an
        # earlier root run) can break a later start.
        chown -R "$ES_USER:" "$ES_HOME" "$ES_RUN_DIR"
    fi
    as_es_user test -r "$ES_HOME/lib" -a -w "$ES_HOME/config" -a -w "$ES_DATA_DIR" \
        -a -w "$ES_LOG_DIR" -a -w "$ES_TMP_DIR" -a -w "$ES_RUN_DIR" ||
        die "user '$(run_user_name)' cannot use $ES_HOME or $ES_RUN_DIR" \
            "(a parent directory not traversable, or files owned by another user?)." \
            "Set ES_HOME_BASE to a directory it can use."
}

# ------------------------------------------------------------------- start
es_settings() {
    ES_SETTINGS=(
        -E discovery.type=single-node
        -E network.host=127.0.0.1
        -E http.port="$ES_PORT"
        -E transport.port="$ES_TRANSPORT_PORT"
        -E path.data="$ES_DATA_DIR"
        -E path.logs="$ES_LOG_DIR"
        -E cluster.name="$ES_CLUSTER_NAME"
        # A nearly full dev/CI disk must not turn indices read-only.
        -E cluster.routing.allocation.disk.threshold_enabled=false
    )
    # Unknown settings are fatal, so pass x-pack settings only when
    # x-pack-core (which defines both) ships. Security off: no TLS/passwords
    # for a loopback-only test node. ML is off for the default distribution;
    # the integ-test zip has no ML module, but still accepts the setting.
    if [[ -d $ES_HOME/modules/x-pack-core ]]; then
        ES_SETTINGS+=(-E xpack.security.enabled=false -E xpack.ml.enabled=false)
    fi
}

# Internal: runs in its own session (via setsid) so the server survives the
# calling shell and its Ctrl-C / SIGHUP. Output goes to console.log (fresh per
# start), written by the ES user so no root-owned file lands in the logs dir.
cmd_launch() {
    es_settings
    # shellcheck disable=SC2016 # $1.. expand in the inner shell, by design
    local inner='cd "$1" && log=$2 && shift 2 && exec "$@" >"$log" 2>&1 </dev/null'
    local -a cmd=(env "${ENGINE_ENV_PREFIX}_JAVA_HOME=$ES_JAVA_HOME" "${ENGINE_ENV_PREFIX}_JAVA_OPTS=$ES_JAVA_OPTS"
        "${ENGINE_ENV_PREFIX}_TMPDIR=$ES_TMP_DIR" bash -c "$inner" es-launch "$ES_LOG_DIR"
        "$ES_LOG_DIR/console.log" "$ES_HOME/bin/$ENGINE_BIN" -p "$ES_PID_FILE"
        "${ES_SETTINGS[@]}")
    # exec (not as_es_user) so this process becomes the launcher itself.
    if ! is_root; then
        exec "${cmd[@]}"
    elif command -v runuser >/dev/null 2>&1; then
        exec runuser -u "$ES_USER" -- "${cmd[@]}"
    else
        exec su -s /bin/bash "$ES_USER" -c "$(printf '%q ' "${cmd[@]}")"
    fi
}

# Wait for yellow health. $1 = pid whose death means the start failed.
wait_healthy() {
    local watch_pid=$1 deadline=$((SECONDS + ES_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if http_get "$HEALTH_URL" >/dev/null 2>&1; then
            return 0
        fi
        if ! proc_alive "$watch_pid"; then
            log "$ENGINE_NAME process exited during startup"
            return 1
        fi
        sleep 1
    done
    log "$ENGINE_NAME not healthy after ${ES_START_TIMEOUT}s"
    return 1
}

log_size() { stat -c %s "$ES_LOG_DIR/$ES_CLUSTER_NAME.log" 2>/dev/null || echo 0; }

# $1 = size of the server log before this start: ES appends to it across
# runs, and only this attempt's lines are worth showing.
dump_logs() {
    local server_log="$ES_LOG_DIR/$ES_CLUSTER_NAME.log" console_log="$ES_LOG_DIR/console.log"
    if [[ -f $server_log ]]; then
        log "---- last lines of $server_log (this start only) ----"
        tail -c "+$(($1 + 1))" "$server_log" | tail -n 60 >&2 || true
    fi
    if [[ -f $console_log ]]; then
        log "---- last lines of $console_log ----"
        tail -n 60 "$console_log" >&2 || true
    fi
}

cmd_start() {
    cmd_fetch
    local pid
    if pid=$(running_pid); then
        log "already running (pid $pid)"
        wait_healthy "$pid" || die "running $ENGINE_NAME (pid $pid) is not healthy"
        printf '%s=%s\n' "$ENGINE_URL_VARIABLE" "$ES_URL"
        return 0
    fi
    rm -f "$ES_PID_FILE" # stale: the process it names is gone
    if port_in_use "$ES_PORT"; then
        die "port $ES_PORT is already in use by a process not started by this script; set ES_PORT"
    fi

    ES_JAVA_HOME=$(find_java_home)
    ES_JAVA_OPTS="${ES_JAVA_OPTS:--Xms512m -Xmx512m}"
    export ES_JAVA_HOME ES_JAVA_OPTS
    ensure_es_user
    prepare_dirs

    log "starting $ENGINE_NAME $ES_VERSION on $ES_URL (java: $ES_JAVA_HOME," \
        "user: $(run_user_name))"
    local started=$SECONDS launcher log_offset
    log_offset=$(log_size)
    setsid -w "${BASH_SOURCE[0]}" _launch </dev/null >/dev/null 2>&1 &
    launcher=$!

    if ! wait_healthy "$launcher"; then
        dump_logs "$log_offset"
        # Do not leave a half-started server behind for the next attempt.
        # setsid made the launcher a process-group leader: signalling that
        # group reaches exactly the processes this start created.
        cmd_stop || true
        kill -TERM -- "-$launcher" 2>/dev/null || true
        exit 1
    fi
    pid=$(read_pid) || log "warning: pid file $ES_PID_FILE missing"
    log "healthy after $((SECONDS - started))s (pid ${pid:-?})"
    printf '%s=%s\n' "$ENGINE_URL_VARIABLE" "$ES_URL"
}

# -------------------------------------------------------------------- stop
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        proc_alive "$pid" || return 0
        sleep 1
    done
    ! proc_alive "$pid"
}

cmd_stop() {
    local pid
    if ! pid=$(read_pid); then
        log "not running (no pid file)"
        return 0
    fi
    if ! is_es_pid "$pid"; then
        log "not running (removing stale pid file)"
        rm -f "$ES_PID_FILE"
        return 0
    fi
    log "stopping $ENGINE_NAME (pid $pid)"
    kill -TERM "$pid" || die "cannot signal pid $pid (started by another user?)"
    if ! wait_gone "$pid" "$ES_STOP_TIMEOUT"; then
        log "still running after ${ES_STOP_TIMEOUT}s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
    fi
    rm -f "$ES_PID_FILE"
    log "stopped"
}

# ------------------------------------------------------------------ status
# Exit codes follow the LSB convention: 0 running, 1 unhealthy, 3 not running.
cmd_status() {
    local pid
    if ! pid=$(running_pid); then
        echo "not running"
        exit 3
    fi
    if http_get "$ES_URL/_cluster/health"; then
        echo
        log "running (pid $pid) at $ES_URL"
    else
        echo "running (pid $pid) but $ES_URL is not answering"
        exit 1
    fi
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

main() {
    case "${1:-}" in
        fetch) cmd_fetch ;;
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        _launch) cmd_launch ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
