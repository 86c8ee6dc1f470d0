#!/usr/bin/env bash
# A private RabbitMQ node (Debian's rabbitmq-server) for development and CI: loopback only, its own
# node name, ports and directories under RABBITMQ_HOME_BASE, run as the rabbitmq user, stopped by name.
#   scripts/rabbitmq.sh start   # prints BROKER_URL=amqp://guest:guest@127.0.0.1:<port>/
#   scripts/rabbitmq.sh stop
set -euo pipefail
BASE="${RABBITMQ_HOME_BASE:-/tmp/search-api-rabbitmq}"
NODE="${RABBITMQ_NODE:-search-api@localhost}"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
as_rabbitmq() { runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$EPMD_PORT" "$@"; }
say() { echo "[rabbitmq.sh] $*" >&2; }

case "${1:-}" in
  start)
    command -v rabbitmq-server >/dev/null || { say "rabbitmq-server is not installed (apt-get install rabbitmq-server)"; exit 1; }
    mkdir -p "$BASE"
    PORT="${RABBITMQ_PORT:-$(free_port)}"
    EPMD_PORT="$(free_port)"
    echo "$PORT $EPMD_PORT" > "$BASE/ports"
    printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "$PORT" > "$BASE/rabbitmq.conf"
    : > "$BASE/enabled_plugins"
    chown -R rabbitmq:rabbitmq "$BASE"
    as_rabbitmq RABBITMQ_NODENAME="$NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$PORT" \
      RABBITMQ_DIST_PORT="$(free_port)" RABBITMQ_MNESIA_BASE="$BASE/mnesia" RABBITMQ_LOG_BASE="$BASE/log" \
      RABBITMQ_PID_FILE="$BASE/pid" RABBITMQ_CONFIG_FILE="$BASE/rabbitmq" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$BASE/enabled_plugins" /usr/lib/rabbitmq/bin/rabbitmq-server -detached
    as_rabbitmq /usr/lib/rabbitmq/bin/rabbitmqctl -n "$NODE" wait "$BASE/pid" --timeout 120 >/dev/null
    say "RabbitMQ on 127.0.0.1:$PORT (node $NODE)"
    echo "BROKER_URL=amqp://guest:guest@127.0.0.1:$PORT/"
    ;;
  stop)
    [[ -f "$BASE/ports" ]] || { say "not running"; exit 0; }
    read -r _ EPMD_PORT < "$BASE/ports"
    as_rabbitmq /usr/lib/rabbitmq/bin/rabbitmqctl -n "$NODE" stop >/dev/null 2>&1 || true
    as_rabbitmq epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
    rm -rf "$BASE"
    say "stopped"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
