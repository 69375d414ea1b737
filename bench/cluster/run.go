//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// runAll runs rounds of the single server and the cluster, interleaved,
// each server in its own process and the client in another.
func runAll(rounds, nodes int, clientArgs []string) error {
	fmt.Printf("cluster fan-out: %d nodes; %s; %s\n", nodes, strings.Join(clientArgs, " "), time.Now().Format(time.RFC3339))
	for r := 1; r <= rounds; r++ {
		got := map[string]result{}
		for _, sc := range []string{"single", "cluster"} {
			res, err := runOne(sc, nodes, clientArgs)
			if err != nil {
				return fmt.Errorf("%s: %w", sc, err)
			}
			got[sc] = res
			st := res.Server
			line := fmt.Sprintf("round %d %-8s %4d receivers  %9.0f deliveries/s  p50 %6.0f µs  p99 %6.0f µs  server CPU %5.2f s/M deliveries",
				r, sc, res.Receivers, res.Rate, res.P50, res.P99, res.ServerCPU/(float64(res.Deliveries)/1e6))
			if sc == "cluster" {
				line += fmt.Sprintf("  NATS publishes/send %.3f (failed %d)  NATS in %.0f B/send, out %.0f B/send",
					float64(st.Published)/float64(res.Sent), st.Failed,
					float64(st.NATSInBytes)/float64(res.Sent), float64(st.NATSOutBytes)/float64(res.Sent))
			}
			fmt.Println(line)
		}
		s, c := got["single"], got["cluster"]
		fmt.Printf("round %d cluster/single: deliveries/s %.2fx, p99 %.2fx\n", r, c.Rate/s.Rate, c.P99/s.P99)
	}
	return nil
}

func runOne(sc string, nodes int, clientArgs []string) (result, error) {
	srv, err := startProc("-mode=server", "-scenario="+sc, fmt.Sprint("-nodes=", nodes))
	if err != nil {
		return result{}, err
	}
	defer srv.kill()
	args := append([]string{"-mode=client", "-addrs=" + srv.addrs, fmt.Sprint("-server-pid=", srv.cmd.Process.Pid)}, clientArgs...)
	if sc == "single" {
		// The whole room on one server.
		for i, a := range args {
			if per, ok := strings.CutPrefix(a, "-per="); ok {
				var n int
				fmt.Sscan(per, &n)
				args[i] = fmt.Sprint("-per=", n*nodes)
			}
		}
	}
	cli, err := execOutput(args...)
	if err != nil {
		return result{}, err
	}
	var res result
	if err := json.Unmarshal(cli, &res); err != nil {
		return result{}, fmt.Errorf("client said %q: %w", cli, err)
	}
	res.Scenario = sc
	if err := srv.stats(&res.Server); err != nil {
		return result{}, err
	}
	return res, nil
}
