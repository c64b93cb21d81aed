#!/bin/sh
# rampart-agent package, before removal (deb prerm, rpm %preun): stop and
# disable the agent when the package goes away, not when it is upgraded.
# The accounts it made stay; its data directory stays until a purge.
set -e
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl disable --now rampart-agent || true
fi
