#!/bin/sh
# rampartd package, before removal (deb prerm, rpm %preun): stop and disable
# the node when the package goes away, not when it is upgraded.
set -e
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl disable --now rampartd || true
fi
