#!/usr/bin/env bash
# scripts/dev.sh: what `make dev` runs (docs/quickstart.md). One rampartd in
# dev mode with its dev IdP, and a demo target: a real sshd run by you (not
# root), on a loopback port of its own, enrolled and configured by a real
# rampart-agent in single-user mode (docs/agent.md), which lets certificates
# in to your own account only. It prints the host CAs, their
# @cert-authority lines and the one `ssh -J` line that reaches the target,
# then runs until Ctrl-C, which stops all three.
#
# Settings (environment, or make variables: make dev DEV_IP=127.0.0.5):
#   BIN           where rampartd and rampart-agent are        (bin)
#   DEV_IP        the node's loopback address                 (127.0.0.1)
#   DEV_DATA      the node's data dir; the demo target's files
#                 are in DEV_DATA/demo                        (data)
#   DEV_SSH_PORT, DEV_API_PORT, DEV_RAFT_PORT, DEV_IDP_PORT   (2222, 8443, 8300, 5556)
#   DEV_TARGET_IP     the demo target's address               (DEV_IP's next: 127.0.0.2)
#   DEV_TARGET_PORT   its port (default: the first free one from 22022,
#                     kept in DEV_DATA/demo/port for the next runs)
#   DEV_DEMO      0: no demo target                           (1)
#   SSHD          the sshd program                            (found on PATH or in /usr/sbin)
set -euo pipefail

BIN=${BIN:-bin}
DEV_IP=${DEV_IP:-127.0.0.1}
DEV_DATA=${DEV_DATA:-data}
DEV_SSH_PORT=${DEV_SSH_PORT:-2222}
DEV_API_PORT=${DEV_API_PORT:-8443}
DEV_RAFT_PORT=${DEV_RAFT_PORT:-8300}
DEV_IDP_PORT=${DEV_IDP_PORT:-5556}
# The node refuses to proxy to itself: the target gets the next address.
DEV_TARGET_IP=${DEV_TARGET_IP:-${DEV_IP%.*}.$(( ${DEV_IP##*.} % 254 + 1 ))}
DEV_DEMO=${DEV_DEMO:-1}

say() { printf '%s\n' "$*"; }
die() { printf 'make dev: %s\n' "$*" >&2; exit 1; }

mkdir -p "$DEV_DATA"
DATA=$(cd "$DEV_DATA" && pwd -P)
BIN=$(cd "$BIN" && pwd -P)
DEMO=$DATA/demo
IDP=http://$DEV_IP:$DEV_IDP_PORT
API=$DEV_IP:$DEV_API_PORT

# The node. Its log goes to a file; what it prints for you to the terminal.
cat >"$DATA/dev.yaml" <<EOF
# Written by scripts/dev.sh on every run.
dev_idp:
  listen: "$DEV_IP:$DEV_IDP_PORT"
  issuer: "$IDP"
EOF
pids=()
stop() {
	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

"$BIN/rampartd" --dev --config "$DATA/dev.yaml" --data-dir "$DATA" --oidc-issuer "$IDP" \
	--listen-ssh "$DEV_IP:$DEV_SSH_PORT" --listen-api "$API" --listen-raft "$DEV_IP:$DEV_RAFT_PORT" \
	2>>"$DATA/rampartd.log" &
node=$!
pids+=("$node")
node_alive() { kill -0 "$node" 2>/dev/null || die "rampartd stopped; its log: $DATA/rampartd.log
$(tail -n 15 "$DATA/rampartd.log")"; }

# api METHOD PATH [JSON]: the admin API with the bootstrap token, which
# reaches curl on its standard input (printf is a shell builtin), never on a
# command line other local users can read in ps.
api() {
	printf 'header = "Authorization: Bearer %s"\n' "$(<"$DATA/bootstrap-token")" |
		curl -fsS --config - --cacert "$DATA/tls/ca.crt" \
			-H 'Content-Type: application/json' -X "$1" "https://$API$2" ${3:+--data "$3"}
}
# first_key reads the first key of a CA keys answer ({"keys":["ssh-ed25519 AAAA…"]}).
first_key() { sed -n 's/.*"keys":\["\([^"]*\)".*/\1/p'; }

for _ in $(seq 600); do
	node_alive
	[ -s "$DATA/bootstrap-token" ] && [ -s "$DATA/tls/ca.crt" ] && api GET /v1/ca/node-host >/dev/null 2>&1 && break
	sleep 0.1
done
api GET /v1/ca/node-host >/dev/null || die "the node's API at https://$API does not answer; its log: $DATA/rampartd.log"

demo_skipped=""
me=$(id -un)
SSHD=${SSHD:-$(command -v sshd || true)}
[ -n "$SSHD" ] || { [ -x /usr/sbin/sshd ] && SSHD=/usr/sbin/sshd; } || true
if [ "$DEV_DEMO" = 0 ]; then
	demo_skipped="DEV_DEMO=0"
elif [ -z "$SSHD" ]; then
	demo_skipped="this machine has no sshd. Install OpenSSH's server (Debian and Ubuntu: sudo apt-get install openssh-server; Fedora: sudo dnf install openssh-server) and run make dev again"
elif [ "$(id -u)" = 0 ]; then
	demo_skipped="make dev runs as root: the demo target runs as your own, unprivileged account, and its agent refuses root. Run make dev as yourself"
elif [[ $DATA =~ [[:space:]\"\'%#] ]]; then
	demo_skipped="the data dir $DATA holds a space, a quote, % or #, which sshd's config cannot name. Set DEV_DATA to another path"
fi

if [ -z "$demo_skipped" ]; then
	mkdir -p "$DEMO/agent"
	chmod 700 "$DEMO" "$DEMO/agent"
	# The project the demo target is in, which lets the dev users (group
	# engineering) log in to your account on it as a shared login.
	api PUT /v1/projects/dev "{\"description\":\"make dev: the demo target\",\"settings\":{\"shared_logins\":[\"$me\"]}}" >/dev/null
	api PUT /v1/projects/dev/grants/engineering '{}' >/dev/null

	# The port, allocated once: the cluster keeps the address a server
	# enrolled with.
	if [ -n "${DEV_TARGET_PORT:-}" ]; then
		port=$DEV_TARGET_PORT
	elif [ -s "$DEMO/port" ]; then
		port=$(cat "$DEMO/port")
	else
		port=22022
		while (exec 3<>"/dev/tcp/$DEV_TARGET_IP/$port") 2>/dev/null; do port=$((port + 1)); done
	fi
	echo "$port" >"$DEMO/port"

	[ -f "$DEMO/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C demo -f "$DEMO/ssh_host_ed25519_key"
	# The agent puts its block (trust in the project's user CA, the host
	# certificate, the principals file) at the top of this file.
	if [ ! -f "$DEMO/sshd_config" ]; then
		cat >"$DEMO/sshd_config" <<EOF
# The demo target of make dev: an sshd run by $me, which only $me can log
# in to. rampart-agent (single-user mode) manages the block at the top.
ListenAddress $DEV_TARGET_IP:$port
HostKey $DEMO/ssh_host_ed25519_key
PidFile $DEMO/sshd.pid
UsePAM no
StrictModes no
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
EOF
	fi
	# -D -e: in the foreground, logging to its file; SIGHUP (the agent's
	# reload) re-executes it, which needs the absolute path.
	touch "$DEMO/sshd.log" # the agent follows it (login_log) from its start
	"$SSHD" -D -f "$DEMO/sshd_config" -E "$DEMO/sshd.log" &
	pids+=($!)

	if [ ! -f "$DEMO/agent/identity.json" ]; then
		api POST /v1/tokens '{"project":"dev","description":"make dev: the demo target","ttl":"1h","uses":1}' |
			sed -n 's/.*"token":"\([^"]*\)".*/\1/p' >"$DEMO/agent/enrollment.token"
		chmod 600 "$DEMO/agent/enrollment.token"
	fi
	cat >"$DEMO/agent.yaml" <<EOF
# Written by scripts/dev.sh on every run (docs/agent.md, single-user mode).
single_user: true
name: demo
addr: $DEV_TARGET_IP
ssh_port: $port
data_dir: $DEMO/agent
token_file: $DEMO/agent/enrollment.token
host_key_files: [$DEMO/ssh_host_ed25519_key.pub]
sshd_config: $DEMO/sshd_config
sshd_pid_file: $DEMO/sshd.pid
sshd_binary: $SSHD
login_log: $DEMO/sshd.log
EOF
	"$BIN/rampart-agent" -c "$DEMO/agent.yaml" 2>>"$DEMO/agent.log" &
	agent=$!
	pids+=("$agent")
	# Ready once the agent has let certificates in to your account.
	for _ in $(seq 600); do
		node_alive
		kill -0 "$agent" 2>/dev/null || die "rampart-agent stopped; its log: $DEMO/agent.log
$(tail -n 15 "$DEMO/agent.log")"
		[ -s "$DEMO/agent/sshd/principals/$me" ] && break
		sleep 0.1
	done
	[ -s "$DEMO/agent/sshd/principals/$me" ] || die "the demo target's agent did not set up sshd in 60s; its log: $DEMO/agent.log"
fi

# The host CAs, and known_hosts lines that trust each for its own names.
node_ca=$(api GET /v1/ca/node-host | first_key)
target_ca=$(api GET /v1/ca/host | first_key)
fp() { ssh-keygen -lf /dev/stdin <<<"$1" | awk '{print $2}'; }
{
	echo "@cert-authority $DEV_IP,[$DEV_IP]:$DEV_SSH_PORT $node_ca"
	# ssh looks a server on a port other than 22 up as [name]:port.
	[ -n "$demo_skipped" ] || echo "@cert-authority demo,[demo]:$port $target_ca"
} >"$DATA/known_hosts"

say ""
say "Host CAs (compare before you trust them):"
say "  the bastion's (node host CA):   $(fp "$node_ca")"
say "  the servers' (target host CA):  $(fp "$target_ca")"
say "Their @cert-authority lines, in $DATA/known_hosts; add them to yours:"
sed 's/^/  /' "$DATA/known_hosts"
say "  cat $DATA/known_hosts >> ~/.ssh/known_hosts"
say ""
if [ -n "$demo_skipped" ]; then
	say "No demo target: $demo_skipped."
else
	say "Demo target: sshd on $DEV_TARGET_IP:$port as $me, enrolled as 'demo' (project dev, group engineering)."
	say "Reach it (the browser approval is for dev user alice, password alice):"
	say "  ssh -J alice@$DEV_IP:$DEV_SSH_PORT -p $port $me@demo"
	say "Warning: the dev IdP's passwords are public and the demo target is YOUR account ($me): anyone on this"
	say "machine who can reach $DEV_IP:$DEV_SSH_PORT and $DEV_IDP_PORT can sign in as alice or bob and get a shell as you."
	say "Run make dev only on a machine you alone use, and stop it when you are done."
fi
say ""
logs="$DATA/rampartd.log"
[ -n "$demo_skipped" ] || logs="$logs $DEMO/agent.log $DEMO/sshd.log"
say "Ready. Logs: $logs. Press Ctrl-C to stop."
wait "$node"
