#!/usr/bin/env bash
# scripts/dev-cluster.sh: a local three-node cluster for trying failover on a
# laptop (docs/cluster.md). Node 1 is `make dev`'s node (scripts/dev.sh: dev
# mode, the dev IdP, the demo target and its agent); nodes 2 and 3 join it
# with its join token and share its key-encryption key, as production nodes
# share theirs. Ctrl-C stops all of them. Build first (make build).
#
# Settings (environment):
#   BIN            where rampartd and rampart-agent are      (bin)
#   CLUSTER_IPS    the three nodes' loopback addresses       (127.0.0.1 127.0.0.2 127.0.0.3)
#   CLUSTER_DATA   the data dirs: CLUSTER_DATA/node1, …       (data-cluster)
#   DEV_TARGET_IP  the demo target's address                 (127.0.0.4: the next after the nodes)
#   DEV_SSH_PORT, DEV_API_PORT, DEV_RAFT_PORT, DEV_IDP_PORT   as in scripts/dev.sh
# The dev IdP runs on node 1's address; every node signs people in with it.
set -euo pipefail

BIN=${BIN:-bin}
read -r -a ips <<<"${CLUSTER_IPS:-127.0.0.1 127.0.0.2 127.0.0.3}"
[ "${#ips[@]}" = 3 ] || { echo "dev-cluster: CLUSTER_IPS must hold three addresses" >&2; exit 2; }
CLUSTER_DATA=${CLUSTER_DATA:-data-cluster}
DEV_SSH_PORT=${DEV_SSH_PORT:-2222}
DEV_API_PORT=${DEV_API_PORT:-8443}
DEV_RAFT_PORT=${DEV_RAFT_PORT:-8300}
DEV_IDP_PORT=${DEV_IDP_PORT:-5556}
last=${ips[2]}
export BIN DEV_SSH_PORT DEV_API_PORT DEV_RAFT_PORT DEV_IDP_PORT
export DEV_TARGET_IP=${DEV_TARGET_IP:-${last%.*}.$(( ${last##*.} % 254 + 1 ))}
mkdir -p "$CLUSTER_DATA"
DATA=$(cd "$CLUSTER_DATA" && pwd -P)
BIN=$(cd "$BIN" && pwd -P)

pids=()
stop() {
	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

# Node 1 with the demo target; its output to the terminal and a file.
mkdir -p "$DATA/node1"
: >"$DATA/node1.out"
DEV_IP=${ips[0]} DEV_DATA=$DATA/node1 "$(dirname "$0")/dev.sh" > >(tee -a "$DATA/node1.out") 2>&1 &
pids+=($!)
for _ in $(seq 1200); do
	grep -q '^Ready\. ' "$DATA/node1.out" && break
	kill -0 "${pids[0]}" 2>/dev/null || { echo "dev-cluster: node 1 stopped (see $DATA/node1.out)" >&2; exit 1; }
	sleep 0.1
done
grep -q '^Ready\. ' "$DATA/node1.out" || { echo "dev-cluster: node 1 is not ready after 120s (see $DATA/node1.out)" >&2; exit 1; }

# Nodes 2 and 3 join it (the join token is ignored once a node has joined).
for i in 1 2; do
	ip=${ips[$i]}
	dir=$DATA/node$((i + 1))
	mkdir -p "$dir"
	"$BIN/rampartd" --data-dir "$dir" --kek-file "$DATA/node1/kek" --join-file "$DATA/node1/join-token" \
		--listen-ssh "$ip:$DEV_SSH_PORT" --listen-api "$ip:$DEV_API_PORT" --listen-raft "$ip:$DEV_RAFT_PORT" \
		--oidc-issuer "http://${ips[0]}:$DEV_IDP_PORT" --oidc-client-id rampart --allow-loopback-targets \
		>>"$dir/rampartd.log" 2>&1 &
	pids+=($!)
done
# api PATH: the admin API with the bootstrap token, given to curl on its
# standard input (printf is a shell builtin), never on a command line.
api() {
	printf 'header = "Authorization: Bearer %s"\n' "$(<"$DATA/node1/bootstrap-token")" |
		curl -fsS --config - --cacert "$DATA/node1/tls/ca.crt" "https://${ips[0]}:$DEV_API_PORT$1"
}
for _ in $(seq 1200); do
	[ "$(api /v1/cluster/status 2>/dev/null | grep -o '"voter":true' | wc -l)" -ge 3 ] && break
	for pid in "${pids[@]:1}"; do kill -0 "$pid" 2>/dev/null || { echo "dev-cluster: a joining node stopped (see $DATA/node2/rampartd.log, $DATA/node3/rampartd.log)" >&2; exit 1; }; done
	sleep 0.1
done
echo
echo "Cluster of three: ${ips[*]} (SSH on port $DEV_SSH_PORT of each). Status:"
echo "  printf 'header = \"Authorization: Bearer %s\"\\n' \"\$(<$DATA/node1/bootstrap-token)\" | curl -s --config - --cacert $DATA/node1/tls/ca.crt https://${ips[0]}:$DEV_API_PORT/v1/cluster/status"
echo "Stop a node to see the others carry on: kill the rampartd of ${ips[1]} or ${ips[2]} (logs in $DATA/node2, $DATA/node3)."
echo "Cluster ready. Press Ctrl-C to stop."
wait "${pids[0]}"
