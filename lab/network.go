package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Network selects a host's network. The zero value is a private network
// namespace with loopback only: the host reaches nothing and nothing
// reaches it.
type Network struct {
	// NamespacePath boots the host in this existing network namespace
	// (e.g. /run/netns/lab0n1, as made by Bridge.Attach) instead of a
	// private one.
	NamespacePath string
	// Address is the host's IPv4 address in that namespace, without prefix
	// length.
	Address string
	// Link is the machine-side end of the host's veth pair; taking it down
	// cuts the host off (see Host.Disconnect).
	Link string
}

// Bridge is a lab network: a Linux bridge on the machine with no uplink and
// no default route, and one network namespace per host joined to it by a
// veth pair (shared/LAB.md). Lab traffic never leaves the machine.
type Bridge struct {
	t      testing.TB
	name   string
	prefix string
}

// NewBridge creates the bridge name (at most 10 characters, unique on the
// machine) for hosts with addresses prefix.11, prefix.12, ... in a /24
// (prefix is three octets, e.g. "10.213.0"; unique on the machine too). It
// is deleted, with every namespace attached to it, by t.Cleanup.
func NewBridge(t testing.TB, name, prefix string) *Bridge {
	t.Helper()
	Require(t)
	if len(name) > 10 || name == "" {
		t.Fatalf("lab: bridge name %q: want 1-10 characters (interface names are at most 15)", name)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("lab: ip not found (%v); install it with: apt-get install iproute2", err)
	}
	b := &Bridge{t: t, name: name, prefix: prefix}
	// A bridge left behind by a killed test run would make the add fail.
	_ = ipQuiet("link", "del", name)
	t.Cleanup(func() {
		if err := ipQuiet("link", "del", name); err != nil {
			t.Errorf("lab: delete bridge %s: %v", name, err)
		}
	})
	b.mustIP("link", "add", name, "type", "bridge")
	b.mustIP("link", "set", name, "up")
	return b
}

// Attach creates host number i's network namespace on the bridge, with
// address prefix.(10+i), and returns the Network to boot it with. The
// namespace is deleted by t.Cleanup (after the host, which was booted
// later, has stopped).
func (b *Bridge) Attach(i int) Network {
	b.t.Helper()
	if i < 1 || i > 200 {
		b.t.Fatalf("lab: host number %d: want 1-200", i)
	}
	ns := fmt.Sprintf("%sn%d", b.name, i)
	link := fmt.Sprintf("%sv%d", b.name, i)
	addr := fmt.Sprintf("%s.%d", b.prefix, 10+i)
	_ = ipQuiet("netns", "del", ns)
	b.t.Cleanup(func() {
		if err := ipQuiet("netns", "del", ns); err != nil {
			b.t.Errorf("lab: delete netns %s: %v", ns, err)
		}
		// Deleting the namespace deletes its end of the pair and so the
		// pair; this only catches a half-made attach.
		_ = ipQuiet("link", "del", link)
	})
	b.mustIP("netns", "add", ns)
	b.mustIP("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
	b.mustIP("link", "set", link, "master", b.name, "up")
	b.mustIP("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	b.mustIP("-n", ns, "link", "set", "eth0", "up")
	b.mustIP("-n", ns, "link", "set", "lo", "up")
	return Network{NamespacePath: "/run/netns/" + ns, Address: addr, Link: link}
}

// Gateway gives the bridge the address prefix.1/24 on the machine and
// returns it. It is opt-in: without it the machine has no address on the
// lab network, so programs on the machine (a Go client in the test
// process) cannot reach the hosts. With it they can, and the hosts can
// reach the machine's listeners at that address; the hosts still have no
// default route, so nothing they send leaves the machine. The address goes
// when the bridge is deleted.
func (b *Bridge) Gateway() string {
	b.t.Helper()
	addr := b.prefix + ".1"
	b.mustIP("addr", "replace", addr+"/24", "dev", b.name)
	return addr
}

func (b *Bridge) mustIP(args ...string) {
	b.t.Helper()
	if err := ipQuiet(args...); err != nil {
		b.t.Fatalf("lab: %v", err)
	}
}

func ipQuiet(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Addr is the host's address on its bridge; empty on a private network.
func (h *Host) Addr() string { return h.opts.Network.Address }

// Disconnect takes the host's link down: its peers see time-outs, as with
// a cut cable or a dead machine (a partition).
func (h *Host) Disconnect() {
	h.t.Helper()
	h.setLink("down")
}

// Reconnect brings the host's link back up (heals the partition).
func (h *Host) Reconnect() {
	h.t.Helper()
	h.setLink("up")
}

func (h *Host) setLink(state string) {
	h.t.Helper()
	link := h.opts.Network.Link
	if link == "" {
		h.t.Fatalf("lab: %s has a private network: nothing to take %s", h.name, state)
	}
	if _, err := os.Stat("/sys/class/net/" + link); err != nil {
		h.t.Fatalf("lab: %s: link %s: %v", h.name, link, err)
	}
	if err := ipQuiet("link", "set", link, state); err != nil {
		h.t.Fatalf("lab: %v", err)
	}
}
