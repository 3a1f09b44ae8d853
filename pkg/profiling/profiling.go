// Package profiling serves Go's runtime profiles of the hw process
// (--enable-pprof). Every component runs in that one process, so one CPU or
// heap profile shows where all of a node's time and memory go.
package profiling

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

// Address is where profiles are served: loopback only, since they need no
// credentials.
const Address = "127.0.0.1:6060"

// Serve listens on addr and serves /debug/pprof/ until the returned stop is
// called. A port already in use is an error naming the fix.
func Serve(ctx context.Context, addr string) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s (--enable-pprof) is already in use; stop the process that holds it (see: ss -ltnp) or drop --enable-pprof", addr)
		}
		return nil, fmt.Errorf("--enable-pprof: cannot listen on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	klog.FromContext(ctx).Info("Serving Go profiles (--enable-pprof)", "url", "http://"+addr+"/debug/pprof/")
	return func() { srv.Close() }, nil
}

// Handler serves the index, the named profiles (heap, goroutine, allocs,
// ...), a CPU profile (profile?seconds=N) and an execution trace.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
