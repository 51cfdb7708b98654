package lab

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ThrottleIncoming makes a slow link: TCP packets the host receives from
// the address from ("10.213.0.11:6380"; "" for every packet it receives)
// pass at most bytesPerSecond, queued (never dropped) beyond that, until
// ClearThrottle. It shapes the machine's end of the host's link with an
// HTB class; what the host sends is not slowed, and with an address only
// that peer's stream is (a replication stream from a primary), so the
// host's agent still talks to the cluster as fast as before. A later call
// replaces the throttle.
//
// It is a rate, not a fixed delay, because the lab machines' kernel has
// no netem (sch_netem); a stream faster than the rate falls further and
// further behind, as a replica on a saturated link does.
func (h *Host) ThrottleIncoming(bytesPerSecond int, from string) {
	h.t.Helper()
	link := h.opts.Network.Link
	if link == "" {
		h.t.Fatalf("lab: %s has a private network: no link to throttle", h.name)
	}
	var fromIP, fromPort string
	if from != "" {
		var err error
		if fromIP, fromPort, err = net.SplitHostPort(from); err != nil || net.ParseIP(fromIP).To4() == nil {
			h.t.Fatalf("lab: throttle the link of %s: from %q: want an IPv4 address and port", h.name, from)
		}
	}
	if _, err := exec.LookPath("tc"); err != nil {
		h.t.Fatalf("lab: tc not found (%v); install it with: apt-get install iproute2", err)
	}
	_ = tcQuiet("qdisc", "del", "dev", link, "root")
	rate := strconv.Itoa(bytesPerSecond*8) + "bit"
	// Unclassified packets bypass HTB unshaped; with no port every packet
	// goes to the slow class by default.
	root := []string{"qdisc", "add", "dev", link, "root", "handle", "1:", "htb"}
	if from == "" {
		root = append(root, "default", "20")
	}
	err := tcQuiet(root...)
	if err == nil {
		err = tcQuiet("class", "add", "dev", link, "parent", "1:", "classid", "1:20", "htb",
			"rate", rate, "ceil", rate, "burst", "1600", "cburst", "1600", "quantum", "1514")
	}
	if err == nil {
		// A long queue: a throttled stream is held back, not cut (a drop
		// would only make TCP retransmit).
		err = tcQuiet("qdisc", "add", "dev", link, "parent", "1:20", "handle", "20:", "pfifo", "limit", "100000")
	}
	if err == nil && from != "" {
		err = tcQuiet("filter", "add", "dev", link, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
			"match", "ip", "protocol", "6", "0xff", "match", "ip", "src", fromIP+"/32",
			"match", "ip", "sport", fromPort, "0xffff", "flowid", "1:20")
	}
	if err != nil {
		_ = tcQuiet("qdisc", "del", "dev", link, "root")
		h.t.Fatalf("lab: throttle the link of %s to %d bytes/s from %q: %v", h.name, bytesPerSecond, from, err)
	}
}

// ClearThrottle removes what ThrottleIncoming set up; it does nothing on a
// link without one.
func (h *Host) ClearThrottle() {
	h.t.Helper()
	link := h.opts.Network.Link
	if link == "" {
		return
	}
	if err := tcQuiet("qdisc", "del", "dev", link, "root"); err != nil &&
		!strings.Contains(err.Error(), "No such file") && !strings.Contains(err.Error(), "handle of zero") {
		h.t.Errorf("lab: clear the throttle on the link of %s: %v", h.name, err)
	}
}

func tcQuiet(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tc", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
