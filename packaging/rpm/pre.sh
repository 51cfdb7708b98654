# %pre of redis-appliance: the group whose members may use the API socket
# (socket_group in /etc/redis-appliance/config.yaml) without root.
getent group redis-appliance >/dev/null || groupadd --system redis-appliance
exit 0
