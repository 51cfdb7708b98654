# %preun of redis-appliance ($1: 0 on erase, 1 on upgrade): an erase stops
# and disables the agent. Its databases are their own units and keep
# running; RPM has no purge: the configuration, /var/lib/redis-appliance and
# every database stay (docs/install.md says how to delete them by hand).
if [ "$1" -eq 0 ]; then
	systemctl --no-reload disable redis-appliance.service >/dev/null 2>&1 || :
	if [ -d /run/systemd/system ]; then
		systemctl stop redis-appliance.service >/dev/null 2>&1 || :
	fi
fi
exit 0
