package tio

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/internal/counters"
	"github.com/tiogo/tio/internal/link"
	"github.com/tiogo/tio/stats"
)

// WithIPStats turns on per-IP statistics (t-io's ipStats): each remote IP
// address gets running totals (Server.IPStats) that are reported to
// c.OnWindow at the end of every window of c.Windows (one minute and one
// hour, say). Without windows, or with WithStats(false), there are none.
// Memory stays bounded: an address's entry expires once it has had no open
// connection and no traffic for longer than the longest window, and at most
// c.MaxIPs addresses are tracked at once. See docs/metrics.md.
func WithIPStats(c stats.IPConfig) Option {
	return func(o *config) { o.ipStats = c }
}

// initStats sets up the latency histogram and per-IP statistics, unless
// statistics are off (no traffic totals).
func (s *Server) initStats() {
	if s.env.Totals == nil {
		return
	}
	s.stats.KeepLatency()
	s.ipStats = counters.NewIPTable(s.cfg.ipStats, time.Now())
}

// startStats starts the goroutine that closes per-IP windows; it ends with
// the server.
func (s *Server) startStats() {
	if s.ipStats != nil {
		go s.ipStats.Run(s.done)
	}
}

// untrackedIP marks a channel that per-IP statistics did not track (their
// table was full).
type untrackedIP struct{}

// trackIP makes a new connection count in its IP address's totals. It runs in
// OnOpen, on the event loop: one map lookup under a lock.
func (s *Server) trackIP(l *link.Link) {
	if s.ipStats == nil {
		return
	}
	ch := (*channel.Channel)(l)
	if t := s.ipStats.Acquire(ch.RemoteAddr().Addr()); t != nil {
		l.SetIPTotals(t)
	} else {
		ch.SetValue(untrackedIP{}, true)
	}
}

// untrackIP undoes trackIP when the connection closes.
func (s *Server) untrackIP(ch *channel.Channel) {
	if s.ipStats == nil || ch.Value(untrackedIP{}) != nil {
		return
	}
	s.ipStats.Release(ch.RemoteAddr().Addr())
}

// statsIPs adds the per-IP figures to a snapshot.
func (s *Server) statsIPs(snap *stats.Snapshot) {
	if s.ipStats != nil {
		snap.IPs = s.ipStats.Len()
		snap.IPsUntracked = s.ipStats.Untracked()
	}
}

// IPStats returns the running totals of the connections from ip, if per-IP
// statistics are on (WithIPStats) and ip is tracked.
func (s *Server) IPStats(ip netip.Addr) (stats.IPStat, bool) {
	if s.ipStats == nil {
		return stats.IPStat{}, false
	}
	return s.ipStats.Get(ip.Unmap())
}

// MetricsHandler returns an http.Handler that serves the server's metrics in
// the Prometheus exposition format (mount it at /metrics). It uses a
// registry of its own holding only the server's collector, never the global
// one, so that any number of servers can live in one process. The collector
// reads the server's atomic counters when scraped: nothing is recorded
// through Prometheus per packet. To register the server with a registry of
// your own, use stats.NewCollector(srv.Stats, labels) (labels tell several
// servers apart). docs/metrics.md lists the metrics. Every call returns
// the same handler, so that a handler given to WithHTTP before the server
// exists may call it per request.
func (s *Server) MetricsHandler() http.Handler {
	s.metricsOnce.Do(func() {
		reg := prometheus.NewRegistry()
		reg.MustRegister(stats.NewCollector(s.Stats, nil))
		s.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	})
	return s.metrics
}
