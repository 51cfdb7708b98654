# %post of redis-appliance ($1: 1 on install, 2 on upgrade): enable and start
# the agent on install. On upgrade the old package's %postun restarts it,
# after the new files are in place (RPM's order). The state directory is
# root:root 0711 whatever was left: redis-appliance (the instance user, whose
# home it is) traverses it to its own 0700 directory, and may not list it.
chown root:root /var/lib/redis-appliance
chmod 0711 /var/lib/redis-appliance
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
	systemctl --no-reload enable redis-appliance.service >/dev/null 2>&1 || :
	if [ -d /run/systemd/system ]; then
		systemctl start redis-appliance.service || :
	fi
	cat <<'MSG'
redis-appliance is installed and its agent enabled. It waits to be told
which cluster this host belongs to (bootstrap: manual):

  redis-appliance cluster init                         # the first or only host
  redis-appliance cluster join ADDRESS --token TOKEN   # every other host

For a cluster of several hosts, first set advertise_addr, raft_addr,
cluster_addr and bind in /etc/redis-appliance/config.yaml and run
`systemctl restart redis-appliance`. To use the CLI without root:
`usermod -aG redis-appliance-admin USER`. Databases run as the system
user redis-appliance, not redis. The distribution's redis.service
(port 6379) is left as it is; databases of redis-appliance use ports
6400-6999.
See /usr/share/doc/redis-appliance/install.md.
MSG
fi
exit 0
