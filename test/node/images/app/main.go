// app is the test node's workload: it serves HTTP on $PORT (default 8080) so that
// readiness and liveness probes have something real to hit, and exits cleanly on SIGTERM,
// after $TERM_DELAY (a Go duration, default none) so that tests can watch a pod terminate. It also
// fetches a URL on request (/fetch), for tests of traffic from one pod to another.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	host, _ := os.Hostname()

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	// GET /fetch?url=<url>: the pod itself fetches the URL, so a test reaches one pod from another's network.
	client := &http.Client{Timeout: 3 * time.Second}
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, io.LimitReader(resp.Body, 64<<10))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s\n", host, r.URL.Path)
	})
	// The pod's own network namespace: every address in it belongs to this pod.
	srv := &http.Server{Addr: net.JoinHostPort("", port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("app: listening on :%s", port)

	select {
	case err := <-errc:
		log.Fatalf("app: %v", err)
	case <-ctx.Done():
	}
	if d, err := time.ParseDuration(os.Getenv("TERM_DELAY")); err == nil && d > 0 {
		log.Printf("app: terminating in %s", d)
		time.Sleep(d)
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("app: shutdown: %v", err)
	}
	log.Print("app: stopped")
}
