package sentinel

import (
	"fmt"
	"sort"
)

// switchMaster is the channel on which clients learn of a new primary.
const switchMaster = "+switch-master"

// Changed re-reads the masters and, for each one whose primary moved since
// the last read, publishes "+switch-master" with "<name> <oldip> <oldport>
// <newip> <newport>" to the subscribers allowed to see that master. A
// master seen for the first time publishes nothing. The agent calls it
// whenever the state may have changed; calling it when nothing did is
// cheap.
func (s *Server) Changed() {
	s.changeMu.Lock()
	defer s.changeMu.Unlock()
	masters := s.src.Masters()
	for i := range masters {
		m := &masters[i]
		old, seen := s.primaries[m.Name]
		if m.Name == "" || !seen || old == m.Addr {
			continue
		}
		s.log.Info("sentinel: primary moved", "master", m.Name, "from", hostPort(old), "to", hostPort(m.Addr), "epoch", m.Epoch)
		payload := fmt.Sprintf("%s %s %d %s %d", m.Name, old.IP, old.Port, m.Addr.IP, m.Addr.Port)
		s.publish(m, switchMaster, payload)
	}
	s.primaries = primariesOf(masters)
}

// primariesOf indexes the primaries by master name. Masters that are gone
// are forgotten, so that one re-created later counts as a first sight.
func primariesOf(masters []Master) map[string]Addr {
	p := make(map[string]Addr, len(masters))
	for _, m := range masters {
		if m.Name != "" {
			p[m.Name] = m.Addr
		}
	}
	return p
}

// publish sends a message about m to every subscriber allowed to see m. A
// subscriber whose output queue is full is dropped: the publisher never
// waits for a client.
func (s *Server) publish(m *Master, channel, payload string) {
	if m.Password == "" {
		return
	}
	for _, c := range s.openConns() {
		if !c.deliver(m, channel, payload) {
			s.log.Warn("sentinel: dropping a client that is not reading its messages", "client", c.id, "remote", c.remote)
			c.close()
		}
	}
}

// deliver queues the message for c if c subscribes to the channel, or to a
// pattern matching it, and may see m. It reports false if c's queue is
// full.
func (c *conn) deliver(m *Master, channel, payload string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.channels) == 0 && len(c.patterns) == 0 {
		return true
	}
	if !(credentials{user: c.user, digest: c.digest}).opens(m) {
		return true
	}
	var out []byte
	if _, ok := c.channels[channel]; ok {
		out = appendBulks(out, "message", channel, payload)
	}
	for _, p := range sortedKeys(c.patterns) {
		if globMatch(p, channel) {
			out = appendBulks(out, "pmessage", p, channel, payload)
		}
	}
	if len(out) == 0 {
		return true
	}
	return c.out.push(out, false)
}

// subscriptions counts channels and patterns; above zero the RESP2 client
// is in subscribed mode. c.mu must be held.
func (c *conn) subscriptions() int {
	return len(c.channels) + len(c.patterns)
}

// The (un)subscribe commands queue their confirmations themselves, under
// c.mu, so that publish cannot slip a message in before them.

func subscribe(_ *Server, c *conn, args []string) reply {
	return c.changeSubscriptions("subscribe", &c.channels, args[1:], true)
}

func psubscribe(_ *Server, c *conn, args []string) reply {
	return c.changeSubscriptions("psubscribe", &c.patterns, args[1:], true)
}

func unsubscribe(_ *Server, c *conn, args []string) reply {
	return c.changeSubscriptions("unsubscribe", &c.channels, args[1:], false)
}

func punsubscribe(_ *Server, c *conn, args []string) reply {
	return c.changeSubscriptions("punsubscribe", &c.patterns, args[1:], false)
}

// changeSubscriptions adds or removes names from set, confirming each with
// [kind, name, count]. Unsubscribing from nothing named means from all; if
// there are none, Redis confirms with a nil name.
func (c *conn) changeSubscriptions(kind string, set *map[string]struct{}, names []string, add bool) reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *set == nil {
		*set = map[string]struct{}{}
	}
	if !add && len(names) == 0 {
		names = sortedKeys(*set)
		if len(names) == 0 {
			out := appendArrayLen(nil, 3)
			out = appendBulk(out, kind)
			out = appendNullBulk(out)
			out = appendInt(out, int64(c.subscriptions()))
			c.out.push(out, true)
			return reply{}
		}
	}
	var out []byte
	for _, n := range names {
		if add {
			(*set)[n] = struct{}{}
		} else {
			delete(*set, n)
		}
		out = appendArrayLen(out, 3)
		out = appendBulk(out, kind)
		out = appendBulk(out, n)
		out = appendInt(out, int64(c.subscriptions()))
	}
	c.out.push(out, true)
	return reply{}
}

func sortedKeys(set map[string]struct{}) []string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// globMatch matches s against a Redis glob pattern: * ? [abc] [^a-z] and \
// escapes. Unlike path.Match, '*' crosses '/'. It backtracks only to the
// last '*', so a pattern full of stars costs O(len(p)*len(s)), not
// exponential time.
func globMatch(p, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, -1
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			switch p[px] {
			case '*':
				starP, starS = px, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			case '[':
				if sx < len(s) {
					if matched, width := matchClass(p[px:], s[sx]); matched {
						px += width
						sx++
						continue
					}
				}
			case '\\':
				lit, width := byte('\\'), 1
				if px+1 < len(p) {
					lit, width = p[px+1], 2
				}
				if sx < len(s) && s[sx] == lit {
					px += width
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == p[px] {
					px++
					sx++
					continue
				}
			}
		}
		if starP >= 0 && starS < len(s) {
			starS++
			px, sx = starP+1, starS
			continue
		}
		return false
	}
	return true
}

// matchClass matches c against the class that p starts with ("[...]") and
// returns the class's width in p. An unterminated class runs to the end of
// the pattern, as in Redis.
func matchClass(p string, c byte) (bool, int) {
	i := 1
	negate := i < len(p) && p[i] == '^'
	if negate {
		i++
	}
	matched := false
	for i < len(p) && p[i] != ']' {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			i++
			if p[i] == c {
				matched = true
			}
		case i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']':
			lo, hi := p[i], p[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo <= c && c <= hi {
				matched = true
			}
			i += 2
		default:
			if p[i] == c {
				matched = true
			}
		}
		i++
	}
	width := i + 1
	if i == len(p) {
		width = i
	}
	return matched != negate, width
}
