package lab

import "testing"

// TestFreePort_BlocksOutsideTheEphemeralRange: ports come in blocks of
// portBlock that never overlap within a run, below the range the kernel
// gives outgoing connections.
func TestFreePort_BlocksOutsideTheEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p := FreePort(t)
		if p < portFirst || p+portBlock-1 > portLast || p >= 32768 {
			t.Fatalf("port %d outside %d-%d", p, portFirst, portLast)
		}
		for q := p; q < p+portBlock; q++ {
			if seen[q] {
				t.Fatalf("port %d handed out twice", q)
			}
			seen[q] = true
		}
	}
}
