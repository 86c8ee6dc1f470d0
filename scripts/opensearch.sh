#!/usr/bin/env bash
# Run a real, throw-away OpenSearch for development and CI without Docker: Maven Central's
# org.opensearch.distribution.integ-test-zip:opensearch (2.19.6 by default; it runs on Java 17 and
# ships only the transport module, no security plugin), run by scripts/elasticsearch.sh, whose
# fetch/start/stop/status it shares (same layout, non-root user, 127.0.0.1, pinned heap).
#
# Usage: scripts/opensearch.sh fetch|start|stop|status   (start prints OPENSEARCH_URL=...)
#
# Environment overrides (defaults in brackets), the OpenSearch twins of elasticsearch.sh's ES_*:
#   OS_VERSION [2.19.6]  OS_PORT [9200]  OS_TRANSPORT_PORT [9300-9399]  OS_HOME_BASE [.cache/opensearch]
#   OS_RUN_DIR [$OS_HOME_BASE/run]  OS_USER [opensearch-ci]  OS_JAVA_HOME [newest JDK 17..21]
#   OS_JAVA_OPTS [-Xms512m -Xmx512m]  OS_START_TIMEOUT [120]
set -euo pipefail

# The caller's ES_* (CI exports them for Elasticsearch) must not leak into this server.
for name in VERSION PORT TRANSPORT_PORT HOME_BASE RUN_DIR USER JAVA_HOME JAVA_OPTS START_TIMEOUT; do
    unset "ES_$name"
    os_name="OS_$name"
    if [[ -n ${!os_name:-} ]]; then export "ES_$name=${!os_name}"; fi
done
export SEARCH_ENGINE=opensearch
exec "$(dirname "${BASH_SOURCE[0]}")/elasticsearch.sh" "$@"
