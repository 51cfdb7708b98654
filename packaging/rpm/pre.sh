# %pre of redis-appliance: the system user databases run as (instance_user
# in /etc/redis-appliance/config.yaml) with a group of its own, no login
# shell and no home created (its home, /var/lib/redis-appliance, stays
# root's); and the group whose members may use the API socket (socket_group)
# without root. That group is NOT the instance user's: a redis-server process
# must never reach the socket, which hands out every database's password.
# The user and both groups are kept on erase (no userdel or groupdel).
getent group redis-appliance >/dev/null || groupadd -r redis-appliance
getent passwd redis-appliance >/dev/null ||
	useradd -r -g redis-appliance -d /var/lib/redis-appliance -s /sbin/nologin -M \
		-c "redis-appliance databases" redis-appliance
getent group redis-appliance-admin >/dev/null || groupadd -r redis-appliance-admin
exit 0
