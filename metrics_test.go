package tio_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/stats"
	"github.com/tiogo/tio/tiotest"
)

// scrape fetches srv's metrics through its MetricsHandler.
func scrape(t testing.TB, srv *tio.Server) string {
	t.Helper()
	hs := httptest.NewServer(srv.MetricsHandler())
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
	return string(b)
}

// busyServer is a server with some of everything to export: traffic,
// handler latency for several types, closes for several reasons, per-IP
// statistics.
func busyServer(t *testing.T) *tio.Server {
	srv := tiotest.NewServer(t, statsMux(), tio.WithIPStats(stats.IPConfig{Windows: []time.Duration{time.Minute}}))
	c := tiotest.DialBinary(t, srv)
	for i := range 10 {
		c.Send(1, []byte{byte(i)})
		c.Recv()
	}
	c.Send(2, []byte("slow"))
	c.Recv()
	c.Send(9, nil) // dropped
	bad := tiotest.DialBinary(t, srv)
	bad.SendRaw([]byte{0xEE})
	tiotest.ExpectClosed(t, bad)
	tiotest.Eventually(t, "counted", func() bool {
		s := srv.Stats()
		return s.Traffic.Handled == 11 && s.Closed[channel.ReasonDecodeError] == 1 && s.DroppedPackets == 1
	})
	return srv
}

// The exposition passes promtool's linter. CI installs Debian's
// prometheus package (.ci/run), so there the test must run: it skips only
// when promtool is missing and CI is unset.
func TestMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("promtool not found with CI=%q: install Debian's prometheus package (.ci/run does)", os.Getenv("CI"))
		}
		t.Skip("promtool not installed (apt-get install prometheus); CI runs this test")
	}
	srv := busyServer(t)
	// Enough packet types to fill the histograms and use the overflow one.
	c := tiotest.DialBinary(t, srv)
	for ty := range stats.LatencyTypes + 5 {
		c.Send(codec.Type(100+ty), nil)
	}
	check := func(exposition string) (string, error) {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(exposition)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return strings.TrimSpace(out.String()), err
	}
	// The check does catch lint: a counter without _total, a unit in ms.
	if out, err := check("# HELP x_ms x\n# TYPE x_ms counter\nx_ms 1\n"); err == nil || out == "" {
		t.Fatalf("promtool passed a bad exposition: %v %q", err, out)
	}
	body := scrape(t, srv)
	if out, err := check(body); err != nil || out != "" {
		t.Fatalf("promtool check metrics: %v\n%s\n--- exposition:\n%s", err, out, body)
	}
	for _, want := range []string{"tio_handler_duration_seconds_bucket", `type="other"`, `reason="decode_error"`} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}

// metricValue returns the value of the sample whose name and labels are
// exactly series ("name" or `name{a="b"}`), or fails.
func metricValue(t testing.TB, body, series string) string {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	t.Fatalf("no sample %s in:\n%s", series, body)
	return ""
}

// The metrics carry the server's counters under the documented
// names, with the close reasons and packet types as labels.
func TestMetricsValues(t *testing.T) {
	srv := busyServer(t)
	body := scrape(t, srv)
	for series, want := range map[string]string{
		"tio_connections_accepted_total":                           "2",
		"tio_connections_active":                                   "1",
		`tio_connections_closed_total{reason="decode_error"}`:      "1",
		`tio_connections_closed_total{reason="heartbeat_timeout"}`: "0",
		"tio_received_packets_total":                               "12",
		"tio_sent_packets_total":                                   "11",
		"tio_handled_packets_total":                                "11",
		"tio_decode_errors_total":                                  "1",
		"tio_dropped_packets_total":                                "1",
		"tio_handler_panics_total":                                 "0",
		"tio_rate_limited_packets_total":                           "0",
		"tio_ip_stats_tracked_ips":                                 "1",
		"tio_ip_stats_untracked_connections_total":                 "0",
		`tio_handler_duration_seconds_count{type="1"}`:             "10",
		`tio_handler_duration_seconds_count{type="2"}`:             "1",
		`tio_handler_duration_seconds_bucket{type="2",le="0.001"}`: "0",
		`tio_handler_duration_seconds_bucket{type="2",le="+Inf"}`:  "1",
	} {
		if got := metricValue(t, body, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	s := srv.Stats().Traffic
	for series, want := range map[string]uint64{
		"tio_received_bytes_total": s.BytesIn, "tio_sent_bytes_total": s.BytesOut, "tio_socket_reads_total": s.Reads,
	} {
		if got := metricValue(t, body, series); got != fmt.Sprint(want) {
			t.Errorf("%s = %s, want %d", series, got, want)
		}
	}
	if n := strings.Count(body, "tio_connections_closed_total{"); n != channel.NumReasons-1 {
		t.Errorf("%d close-reason series, want %d", n, channel.NumReasons-1)
	}
}

// The type label stays low-cardinality whatever types peers send.
func TestMetricsTypeCardinality(t *testing.T) {
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	srv := tiotest.NewServer(t, mux)
	c := tiotest.DialBinary(t, srv)
	const types = 500
	for ty := range types {
		c.Send(codec.Type(ty*131), nil)
		c.Recv()
	}
	body := scrape(t, srv)
	if n := strings.Count(body, "tio_handler_duration_seconds_count{"); n != stats.LatencyTypes+1 {
		t.Fatalf("%d latency series, want %d and other", n, stats.LatencyTypes)
	}
	if got := metricValue(t, body, `tio_handler_duration_seconds_count{type="other"}`); got != fmt.Sprint(types-stats.LatencyTypes) {
		t.Fatalf("other: %s", got)
	}
}

// Serving a server's metrics for Prometheus to scrape.
func ExampleServer_MetricsHandler() {
	srv := tio.NewServer("127.0.0.1:0", handler.NewMux())
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())

	// In a program: http.ListenAndServe("127.0.0.1:9002", mux) with
	mux := http.NewServeMux()
	mux.Handle("/metrics", srv.MetricsHandler())
	hs := httptest.NewServer(mux)
	defer hs.Close()

	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "tio_connections_a") {
			fmt.Println(line)
		}
	}
	// Output:
	// # HELP tio_connections_accepted_total Connections accepted, including those then refused at admission.
	// # TYPE tio_connections_accepted_total counter
	// tio_connections_accepted_total 0
	// # HELP tio_connections_active Connections open now.
	// # TYPE tio_connections_active gauge
	// tio_connections_active 0
}

// The docs page explains every exported metric, and the Grafana
// dashboard (valid JSON) queries only metrics that exist.
func TestMetricsDocsAndDashboard(t *testing.T) {
	body := scrape(t, busyServer(t))
	exported := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			exported[strings.Fields(name)[0]] = true
		}
	}
	if len(exported) < 15 {
		t.Fatalf("only %d metrics exported", len(exported))
	}
	doc, err := os.ReadFile("docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range exported {
		if !strings.Contains(string(doc), "| `"+name+"` |") {
			t.Errorf("docs/metrics.md does not explain %s", name)
		}
	}
	raw, err := os.ReadFile("docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range regexp.MustCompile(`tio_[a-z_]+`).FindAllString(tg.Expr, -1) {
				base := name
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(name, suf); ok && exported[b] {
						base = b
					}
				}
				if !exported[base] {
					t.Errorf("panel %q queries %s, which is not exported", p.Title, name)
				}
				used[base] = true
			}
		}
	}
	for name := range exported {
		if !used[name] {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
}

// MetricsHandler returns one handler, whatever the number of calls: a
// WithHTTP handler may ask for it per request without building a registry
// each time.
func TestMetricsHandlerIsShared(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	srv.MetricsHandler()
	if n := testing.AllocsPerRun(10, func() { srv.MetricsHandler() }); n != 0 {
		t.Fatalf("a call after the first allocates %v times: it builds a registry again", n)
	}
}
