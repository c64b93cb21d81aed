#!/bin/sh
# rampartd package, after install or upgrade (deb postinst, rpm %post).
# Makes the rampart system user and gives it its configuration and data
# directory. A node is never started by a first install: it needs its
# configuration, a key-encryption key and a bootstrap or join decision first
# (docs/install.md). Nor is a running node restarted by an upgrade:
# unattended upgrades on every node at once would restart them together and
# lose the quorum; the operator restarts one node at a time
# (docs/operations.md, "Rolling upgrade").
#
# DPKG_ROOT is set when dpkg installs into another root without chrooting
# (dpkg --root DIR --force-script-chrootless); everything here honours it.
set -e
root=${DPKG_ROOT:-}

if ! grep -q '^rampart:' "$root/etc/group" 2>/dev/null; then
	groupadd --system --prefix "$root/" rampart
fi
if ! grep -q '^rampart:' "$root/etc/passwd" 2>/dev/null; then
	nologin=/usr/sbin/nologin
	[ -x "$root$nologin" ] || nologin=/sbin/nologin
	useradd --system --prefix "$root/" --gid rampart --home-dir /var/lib/rampart \
		--no-create-home --shell "$nologin" --comment "Rampart node" rampart
fi
# The configuration may hold secrets (oidc.client_secret): readable by
# rampartd's group only. The key-encryption key the operator puts beside it
# belongs to the rampart user, mode 0600 (rampartd refuses one that others
# can read).
# By number, from the root being installed into (not the host's names).
uid=$(sed -n 's/^rampart:[^:]*:\([0-9]*\):.*/\1/p' "$root/etc/passwd")
gid=$(sed -n 's/^rampart:[^:]*:\([0-9]*\):.*/\1/p' "$root/etc/group")
chgrp "$gid" "$root/etc/rampart/rampartd.yaml"
chmod 0640 "$root/etc/rampart/rampartd.yaml"
install -d -m 0700 "$root/var/lib/rampart"
chown "$uid:$gid" "$root/var/lib/rampart"

if [ -n "$root" ] || [ ! -d /run/systemd/system ]; then
	exit 0
fi
systemctl daemon-reload || true
if systemctl is-active --quiet rampartd; then
	echo "rampartd: upgraded, still running the previous version. Restart the nodes one at a time,"
	echo "each once the last one is ready again: systemctl restart rampartd (docs/operations.md, \"Rolling upgrade\")"
elif ! systemctl is-enabled --quiet rampartd 2>/dev/null; then
	echo "rampartd: installed, not started. Edit /etc/rampart/rampartd.yaml, create /etc/rampart/kek"
	echo "(docs/install.md), then: systemctl enable --now rampartd"
fi
