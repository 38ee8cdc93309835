// promproxy-go-example serves a client_golang registry through a promproxy server.
//
//	promproxy-go-example -server http://127.0.0.1:8080 -name app-go [-label env=dev ...]
//	promproxy-go-example SERVER NAME
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"promproxy-example/promproxy"
)

// labelFlags collects repeated -label name=value flags.
type labelFlags map[string]string

func (l labelFlags) String() string { return fmt.Sprint(map[string]string(l)) }
func (l labelFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want name=value, got %q", s)
	}
	l[k] = v
	return nil
}

func main() {
	server := flag.String("server", "http://127.0.0.1:8080", "the promproxy server")
	name := flag.String("name", "app-go", "the name Prometheus scrapes this application by")
	labels := labelFlags{}
	flag.Var(labels, "label", "a label for service discovery, name=value (repeatable)")
	flag.Parse()
	switch flag.NArg() { // the positional form: SERVER NAME
	case 0:
	case 2:
		*server, *name = flag.Arg(0), flag.Arg(1)
	default:
		log.Fatalf("usage: %s [-server URL] [-name NAME] [-label k=v]... | %s SERVER NAME", os.Args[0], os.Args[0])
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ticks := prometheus.NewCounter(prometheus.CounterOpts{Name: "example_ticks_total", Help: "Seconds this example has been running."})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "example_info", Help: "Always 1, with the client's name."}, []string{"client"})
	registry.MustRegister(ticks, info)
	info.WithLabelValues(*name).Set(1)
	go func() {
		for range time.Tick(time.Second) {
			ticks.Inc()
		}
	}()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := promproxy.Run(ctx, promproxy.Options{Server: *server, Name: *name, Labels: labels, Gatherer: registry}); err != nil {
		log.Fatal(err)
	}
	log.Print("promproxy: stopped")
}
