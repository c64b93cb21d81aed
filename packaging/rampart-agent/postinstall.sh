#!/bin/sh
# rampart-agent package, after install or upgrade (deb postinst, rpm %post).
# The agent is started only when it has something to enroll with: an
# enrollment token, a credential from an earlier enrollment, or cloud
# auto-enrollment in its configuration. Without one it is neither enabled nor
# started, and this says what to do. While /etc/rampart/disable-autostart
# exists (golden images) it is enabled and never started.
#
# DPKG_ROOT is set when dpkg installs into another root without chrooting
# (dpkg --root DIR --force-script-chrootless); everything here honours it.
set -e
root=${DPKG_ROOT:-}
conf=/etc/rampart/rampart-agent.yaml
marker=/etc/rampart/disable-autostart
data=/var/lib/rampart-agent
token=$data/enrollment.token
auto=

# value KEY: a top-level scalar of the configuration (as install.sh reads it).
value() {
	sed -n "s/^$1:[[:space:]]*[\"']\{0,1\}\([^\"' #]*\).*/\1/p" "$root$conf" | tail -n 1
}
if [ -f "$root$conf" ]; then
	v=$(value data_dir)
	case $v in /*) data=$v token=$v/enrollment.token ;; esac
	v=$(value token_file)
	case $v in /*) token=$v ;; esac
	auto=$(value auto_enroll)
fi
[ -d "$root$data" ] || install -d -m 0700 "$root$data"

why=
if [ ! -f "$root$conf" ]; then
	why="there is no $conf (an example: /usr/share/doc/rampart-agent/examples/rampart-agent.yaml)"
elif [ ! -e "$root$data/identity.json" ] && [ ! -s "$root$token" ] && [ -z "$auto" ]; then
	why="there is no enrollment token at $token"
fi

if [ -n "$root" ] || [ ! -d /run/systemd/system ]; then
	[ -z "$why" ] || echo "rampart-agent: installed, not started: $why"
	exit 0
fi
systemctl daemon-reload || true
if [ -e "$marker" ]; then
	systemctl enable rampart-agent
	echo "rampart-agent: enabled, not started: $marker exists (golden image); it starts on the first boot without it"
elif [ -n "$why" ]; then
	echo "rampart-agent: installed, not started: $why."
	echo "Put the token there (ssh admin@bastion tokens create PROJECT), then: systemctl enable --now rampart-agent"
elif systemctl is-active --quiet rampart-agent; then
	systemctl restart rampart-agent
else
	systemctl enable --now rampart-agent
fi
