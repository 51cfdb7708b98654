package agent

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// DebugEnv names the loopback address at which the agent serves Go's
// profiler (net/http/pprof) when set, e.g. 127.0.0.1:6060. It is for
// diagnosing CPU or memory use; it is off unless an operator asks for it,
// and only a loopback address is accepted.
const DebugEnv = "REDIS_APPLIANCE_DEBUG_ADDR"

// serveDebug serves the profiler until ctx ends, if DebugEnv is set.
func serveDebug(ctx context.Context, log *slog.Logger) {
	addr := os.Getenv(DebugEnv)
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		log.Warn("ignoring "+DebugEnv+": give a loopback host:port such as 127.0.0.1:6060", "value", addr)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("profiler listening", "addr", addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Warn("profiler stopped", "err", err)
	}
}
