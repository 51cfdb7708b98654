package e2e

import (
	"context"
	"time"
)

// paced is the loop of the e2e writers and probes: step(1), step(2), ...
// once every period, until limit steps were taken, maxRun has passed, stop
// is closed or ctx ends. Every load loop of the tests is bounded this way,
// in count and in time.
func paced(ctx context.Context, stop <-chan struct{}, every time.Duration, limit int, maxRun time.Duration, step func(i int)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	deadline := time.Now().Add(maxRun)
	for i := 1; i <= limit && time.Now().Before(deadline); i++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		step(i)
	}
}
