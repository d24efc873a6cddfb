#!/usr/bin/env bash
# One-machine Ray cluster for equisweep: dashboard on localhost only, token auth on.
#
#   clusters/local.sh start                      # head node on this machine
#   clusters/local.sh submit sweeps/quickstart.yaml [--store DIR]   # run a sweep as a Ray job
#   clusters/local.sh stop                       # stops every Ray process of this user
#
# Ray (>= 2.52) authenticates with one token: RAY_AUTH_TOKEN, else the file at
# RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token. `start` creates that file once with
# `ray get-auth-token --generate` and reuses it afterwards; every client in a shell with
# RAY_AUTH_MODE=token (ray job submit, equisweep submit, the dashboard's login prompt, which
# takes the output of `ray get-auth-token`) then presents it. A client on another machine
# needs the same token: copy the file, or export RAY_AUTH_TOKEN=... there.
#
# `equisweep run SWEEP.yaml` needs none of this: it starts an embedded Ray of its own.
set -euo pipefail

export RAY_AUTH_MODE=token
DASHBOARD_PORT="${DASHBOARD_PORT:-8265}"

case "${1:-}" in
  start)
    # The token goes to ~/.ray/auth_token, not to the terminal or a log.
    ray get-auth-token --generate >/dev/null
    args=(--head --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT")
    if [[ -n "${NUM_CPUS:-}" ]]; then args+=(--num-cpus "$NUM_CPUS"); fi
    if [[ -n "${NUM_GPUS:-}" ]]; then args+=(--num-gpus "$NUM_GPUS"); fi
    ray start "${args[@]}"
    echo "dashboard: http://127.0.0.1:${DASHBOARD_PORT} (token: run 'ray get-auth-token')"
    echo "submit:    RAY_AUTH_MODE=token equisweep submit SWEEP.yaml --address http://127.0.0.1:${DASHBOARD_PORT}"
    ;;
  submit)
    shift
    if [[ $# -lt 1 ]]; then
      echo "usage: $0 submit SWEEP.yaml [equisweep submit options]" >&2
      exit 2
    fi
    exec equisweep submit "$1" --address "http://127.0.0.1:${DASHBOARD_PORT}" --follow "${@:2}"
    ;;
  stop)
    ray stop
    ;;
  *)
    echo "usage: $0 start|submit SWEEP.yaml|stop" >&2
    exit 2
    ;;
esac
