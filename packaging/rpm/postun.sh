# %postun of redis-appliance ($1: 0 on erase, 1 on upgrade): on upgrade,
# restart the agent (now the new binary) if it was running; databases are
# their own units and are not restarted.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart redis-appliance.service >/dev/null 2>&1 || :
	fi
fi
exit 0
