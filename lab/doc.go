// Package lab boots disposable hosts with real systemd as PID 1 for tests, on
// a machine where systemd is not PID 1 (development machines, CI).
//
// A host is a systemd-nspawn container booted from a read-only bind of the
// machine's own root (/srv/hostro) with an overlay on top, so every package
// installed on the machine is visible inside and nothing the container does
// reaches the machine's files. Never boot systemd on the machine's own root:
// systemd-tmpfiles would wipe /tmp and more. See shared/LAB.md.
//
//	h := lab.Boot(t, lab.Options{Persistent: true, Binds: []lab.Bind{{Host: bin, Container: "/usr/bin/redis-appliance"}}})
//	h.MustExec(ctx, "systemctl", "enable", "--now", "redis-appliance")
//	h.PowerLoss() // SIGKILL the container's PID 1
//	h.Boot()      // same disk, fresh boot
//
// A host has a private network (loopback only) by default. For several
// hosts that see each other, NewBridge makes a bridge with no uplink and
// Bridge.Attach a network namespace per host with its own address
// (10.213.x.11, .12, ...); Host.Disconnect and Host.Reconnect cut and heal
// a host's link (partitions), and a host that loses power or shuts down
// also loses its link, so peers time out as with a dead machine.
//
// Every host is torn down by t.Cleanup; on a failed test its journal and
// console tail are logged first. The package needs root and systemd-nspawn
// (apt-get install systemd-container); without them Boot fails the test, it
// never skips it, so a CI machine that lacks them is noticed.
package lab
