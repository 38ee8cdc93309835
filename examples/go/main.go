// promproxy-go-example serves a client_golang registry through a promproxy server.
//
//	promproxy-go-example -server http://127.0.0.1:8080 -name app-go [-label env=dev ...] [-body-bytes N]
//	promproxy-go-example SERVER NAME [BODY_BYTES]
//
// -body-bytes pads the registry with series until its exposition has at least N bytes (the conformance kit's
// {size}: rules about chunks and credit show only on a body larger than a chunk).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strconv"
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
	bodyBytes := flag.Int("body-bytes", 0, "pad the exposition with series to at least this many bytes")
	labels := labelFlags{}
	flag.Var(labels, "label", "a label for service discovery, name=value (repeatable)")
	flag.Parse()
	switch flag.NArg() { // the positional form: SERVER NAME [BODY_BYTES]
	case 0:
	case 2, 3:
		*server, *name = flag.Arg(0), flag.Arg(1)
		if flag.NArg() == 3 {
			n, err := strconv.Atoi(flag.Arg(2))
			if err != nil || n < 0 {
				log.Fatalf("BODY_BYTES must be a number of bytes, got %q", flag.Arg(2))
			}
			*bodyBytes = n
		}
	default:
		log.Fatalf("usage: %s [-server URL] [-name NAME] [-label k=v]... [-body-bytes N] | %s SERVER NAME [BODY_BYTES]", os.Args[0], os.Args[0])
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ticks := prometheus.NewCounter(prometheus.CounterOpts{Name: "example_ticks_total", Help: "Seconds this example has been running."})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "example_info", Help: "Always 1, with the client's name."}, []string{"client"})
	registry.MustRegister(ticks, info)
	info.WithLabelValues(*name).Set(1)
	if *bodyBytes > 0 {
		padding := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "example_padding", Help: "Series that make the body -body-bytes long."}, []string{"series"})
		registry.MustRegister(padding)
		// Each series renders as `example_padding{series="padding-series-000001"} 1` and a newline: 50 bytes.
		for i := 0; i < *bodyBytes/50+1; i++ {
			padding.WithLabelValues(fmt.Sprintf("padding-series-%06d", i)).Set(float64(i))
		}
	}
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
