#!/usr/bin/env bash
# A one-machine Ray cluster bound to 127.0.0.1, for `ray job submit` against localhost.
#   cluster/local.sh start   # then: RAY_ADDRESS=http://127.0.0.1:8265 ray job submit --working-dir . -- python jobs/build_kb.py ...
#   cluster/local.sh stop
set -euo pipefail
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
case "${1:-}" in
  start) ray start --head --node-ip-address=127.0.0.1 --dashboard-host=127.0.0.1 --port=6379 --num-cpus="${NUM_CPUS:-$(nproc)}" ;;
  stop) ray stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
