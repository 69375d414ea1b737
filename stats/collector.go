package stats

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiogo/tio/internal/link"
)

// Metric names, as exported by the collector. docs/metrics.md explains each.
const (
	MetricAccepted       = "tio_connections_accepted_total"
	MetricActive         = "tio_connections_active"
	MetricClosed         = "tio_connections_closed_total"
	MetricReceivedBytes  = "tio_received_bytes_total"
	MetricReceivedPacket = "tio_received_packets_total"
	MetricReads          = "tio_socket_reads_total"
	MetricSentBytes      = "tio_sent_bytes_total"
	MetricSentPackets    = "tio_sent_packets_total"
	MetricHandled        = "tio_handled_packets_total"
	MetricHandlerLatency = "tio_handler_duration_seconds"
	MetricDecodeErrors   = "tio_decode_errors_total"
	MetricPanics         = "tio_handler_panics_total"
	MetricPanicsClosing  = "tio_handler_panics_while_closing_total"
	MetricSlowHandlers   = "tio_slow_handlers_total"
	MetricDropped        = "tio_dropped_packets_total"
	MetricRateLimited    = "tio_rate_limited_packets_total"
	MetricIPs            = "tio_ip_stats_tracked_ips"
	MetricIPsUntracked   = "tio_ip_stats_untracked_connections_total"
	MetricTLSHandshakes  = "tio_tls_handshakes_total"
	MetricTLSFailures    = "tio_tls_failures_total"
	MetricTLSWorkers     = "tio_tls_handshake_workers"
	MetricTLSQueued      = "tio_tls_handshakes_queued"
)

// OtherType is the value of the type label of the latency histogram shared by
// the packet types seen after the first LatencyTypes.
const OtherType = "other"

// collector exports snapshots as Prometheus metrics.
type collector struct {
	snapshot func() Snapshot

	accepted, active, closed            *prometheus.Desc
	bytesIn, packetsIn, reads           *prometheus.Desc
	bytesOut, packetsOut                *prometheus.Desc
	handled, latency                    *prometheus.Desc
	decodeErrors, panics, dropped, rate *prometheus.Desc
	panicsClosing, slowHandlers         *prometheus.Desc
	ips, ipsUntracked                   *prometheus.Desc
	tlsOK, tlsFailed, tlsWork, tlsQueue *prometheus.Desc
}

// NewCollector returns a prometheus.Collector that calls snapshot at each
// scrape (tio.Server.Stats, typically) and exports what it returns: reading
// atomic counters at scrape time is all it costs; nothing is recorded per
// packet through Prometheus. constLabels, if not nil, are added to every
// metric: use them to tell apart several servers registered with one
// registry (prometheus.Labels{"server": "ws"}).
func NewCollector(snapshot func() Snapshot, constLabels prometheus.Labels) prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, constLabels)
	}
	return &collector{
		snapshot:      snapshot,
		accepted:      d(MetricAccepted, "Connections accepted, including those then refused at admission."),
		active:        d(MetricActive, "Connections open now."),
		closed:        d(MetricClosed, "Connections closed, by close reason.", "reason"),
		bytesIn:       d(MetricReceivedBytes, "Bytes received from peers."),
		packetsIn:     d(MetricReceivedPacket, "Packets decoded from peers."),
		reads:         d(MetricReads, "Socket reads that delivered bytes (bytes per read: rate of received bytes over rate of reads)."),
		bytesOut:      d(MetricSentBytes, "Bytes written to peers."),
		packetsOut:    d(MetricSentPackets, "Packets sent to peers."),
		handled:       d(MetricHandled, "Packets whose handler returned."),
		latency:       d(MetricHandlerLatency, "Time handlers took, by packet type (the first 32 types seen; later ones share type=\"other\").", "type"),
		decodeErrors:  d(MetricDecodeErrors, "Connections closed for undecodable or protocol-breaking input."),
		panics:        d(MetricPanics, "Handler panics (each closes its connection, unless it was closing already)."),
		panicsClosing: d(MetricPanicsClosing, "Handler panics on a connection already closing for another reason, which stays its close reason."),
		slowHandlers:  d(MetricSlowHandlers, "Handlers on the worker pool still running past the slow-handler threshold (each counted once)."),
		dropped:       d(MetricDropped, "Packets dropped because no handler takes their type."),
		rate:          d(MetricRateLimited, "Packets dropped by the inbound rate limit."),
		ips:           d(MetricIPs, "IP addresses tracked by per-IP statistics."),
		ipsUntracked:  d(MetricIPsUntracked, "Connections not tracked by per-IP statistics because the table of addresses was full."),
		tlsOK:         d(MetricTLSHandshakes, "TLS handshakes that succeeded."),
		tlsFailed:     d(MetricTLSFailures, "Connections ended by their TLS layer, by failure (each also counted by close reason).", "failure"),
		tlsWork:       d(MetricTLSWorkers, "Goroutines running TLS handshakes."),
		tlsQueue:      d(MetricTLSQueued, "TLS handshakes waiting for a worker."),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.accepted, c.active, c.closed, c.bytesIn, c.packetsIn, c.reads, c.bytesOut, c.packetsOut,
		c.handled, c.latency, c.decodeErrors, c.panics, c.dropped, c.rate, c.ips, c.ipsUntracked,
		c.panicsClosing, c.slowHandlers, c.tlsOK, c.tlsFailed, c.tlsWork, c.tlsQueue,
	} {
		ch <- d
	}
}

// latencyBoundsSeconds are the histogram's bounds in seconds.
var latencyBoundsSeconds = func() []float64 {
	b := make([]float64, len(latencyBounds))
	for i, ns := range latencyBounds {
		b[i] = float64(ns) / 1e9
	}
	return b
}()

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(c.accepted, s.Accepted)
	gauge(c.active, float64(s.Active))
	// Every reason, zeros included, so that rate() sees a series from the
	// first scrape rather than from the first close of each kind.
	for r := 1; r < link.NumReasons; r++ {
		counter(c.closed, s.Closed[r], link.Reason(r).String())
	}
	t := s.Traffic
	counter(c.bytesIn, t.BytesIn)
	counter(c.packetsIn, t.PacketsIn)
	counter(c.reads, t.Reads)
	counter(c.bytesOut, t.BytesOut)
	counter(c.packetsOut, t.PacketsOut)
	counter(c.handled, t.Handled)
	counter(c.decodeErrors, t.DecodeErrors)
	counter(c.panics, s.HandlerPanics)
	counter(c.panicsClosing, s.PanicsWhileClosing)
	counter(c.slowHandlers, s.SlowHandlers)
	counter(c.dropped, s.DroppedPackets)
	counter(c.rate, s.RateLimited)
	gauge(c.ips, float64(s.IPs))
	counter(c.ipsUntracked, s.IPsUntracked)
	counter(c.tlsOK, s.TLS.Handshakes)
	for f := range NumTLSFailures {
		counter(c.tlsFailed, s.TLS.Failed[f], f.String())
	}
	gauge(c.tlsWork, float64(s.TLS.Workers))
	gauge(c.tlsQueue, float64(s.TLS.Queued))
	for _, l := range s.Latency {
		buckets := make(map[float64]uint64, len(latencyBoundsSeconds))
		var cum uint64
		for i, le := range latencyBoundsSeconds {
			cum += l.Buckets[i]
			buckets[le] = cum
		}
		label := OtherType
		if !l.Other {
			label = strconv.Itoa(int(l.Type))
		}
		ch <- prometheus.MustNewConstHistogram(c.latency, l.Count, l.Sum.Seconds(), buckets, label)
	}
}
