#!/usr/bin/env bash
# demo.sh — `make demo`: a real federation on this machine. Initialises a
# coordinator in build/demo, admits 8 agents that each hold a Dirichlet(0.5)
# label-skewed slice of Fashion-MNIST, trains mlp:784-256-10 for 20 rounds over
# CurveZMQ on 127.0.0.1 with live progress, prints the final status and shuts
# everything down. The state stays in build/demo, so afterwards
#     build/covey-coordinator status --state build/demo
# still answers (read-only from the database).
#
# Usage: deploy/demo.sh [BUILD_DIR]    (env: DEMO_AGENTS, DEMO_ROUNDS)
set -euo pipefail
bin=$(cd "${1:-build}" && pwd)
agents=${DEMO_AGENTS:-8}
rounds=${DEMO_ROUNDS:-20}
state=$bin/demo
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
eport=$(free_port)
rm -rf "$state"
echo "== Covey demo: $agents agents, Fashion-MNIST split Dirichlet(0.5) by label, mlp:784-256-10, $rounds rounds"
"$bin/covey-coordinator" init --state "$state" --model mlp:784-256-10 \
    --set federation.name=demo --set "federation.endpoint=tcp://127.0.0.1:$port" \
    --set "federation.enroll_endpoint=tcp://127.0.0.1:$eport" \
    --set "rounds.rounds=$rounds" --set "rounds.min_fit=$agents" \
    --set "rounds.min_available=$agents" >/dev/null
mkdir -p "$state/agents" "$state/logs"
echo "   state in $state; agents connect to tcp://127.0.0.1:$port; logs in $state/logs/"

"$bin/covey-coordinator" run --state "$state" --exit-when-done 2>"$state/logs/coordinator.log" &
coord=$!
pids+=("$coord")
# Each agent joins with a one-time token: it makes its own key pair (the
# secret never leaves it) and learns the coordinator's keys from the token.
for i in $(seq 0 $((agents - 1))); do
    token=$("$bin/covey-coordinator" token create --name "edge-$i" --ttl 10m \
        --host 127.0.0.1 --state "$state" 2>/dev/null)
    "$bin/covey-agent" enroll "$token" --state "$state/agents/edge-$i" --data fashion-mnist \
        --partition dirichlet:0.5 --parts "$agents" --index "$i" --seed 42 >/dev/null
done
echo "   $agents agents enrolled with one-time join tokens"
for i in $(seq 0 $((agents - 1))); do
    "$bin/covey-agent" run --state "$state/agents/edge-$i" 2>"$state/logs/edge-$i.log" &
    pids+=("$!")
done

# Live progress from the coordinator's log until it finishes.
start=$(date +%s)
tail --pid="$coord" -n +1 -F "$state/logs/coordinator.log" 2>/dev/null | while IFS= read -r line; do
    case "$line" in
        *'msg="round committed"'*)
            r=$(sed -n 's/.* round=\([0-9]*\).*/\1/p' <<<"$line")
            l=$(sed -n 's/.* train_loss=\([0-9.]*\).*/\1/p' <<<"$line")
            s=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$line")
            printf '   round %2s/%s committed  train loss %s  (%ss)\n' "$r" "$rounds" "$l" "$s" ;;
        *'msg="evaluation done"'*)
            a=$(sed -n 's/.* eval_accuracy=\([0-9.]*\).*/\1/p' <<<"$line")
            printf '              federated evaluation: accuracy %s\n' "$a" ;;
        *'level=error'*) echo "   $line" ;;
    esac
done
wait "$coord" || { echo "coordinator failed; see $state/logs/coordinator.log"; exit 1; }
echo "== finished in $(( $(date +%s) - start ))s"
echo
"$bin/covey-coordinator" status --state "$state"
