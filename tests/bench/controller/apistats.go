package main

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// apiSnapshot is what the API server has done so far: its requests by kind
// (count and summed latency) and the CPU ticks of kube-apiserver and etcd.
// The difference of two says what a phase of the benchmark cost it.
type apiSnapshot struct {
	requests map[string]requestStat // by "VERB resource[/subresource]"
	ticks    int                    // kube-apiserver + etcd, 1/100 s
}

type requestStat struct {
	count   float64
	seconds float64
}

// durationLine is a line of apiserver_request_duration_seconds' _sum or
// _count, with its labels and value.
var durationLine = regexp.MustCompile(`^apiserver_request_duration_seconds_(sum|count)\{([^}]*)\} (\S+)$`)

// snapshotAPI reads the API server's /metrics and its and etcd's CPU time.
func snapshotAPI(ctx context.Context, env *testenv.Env) (apiSnapshot, error) {
	s := apiSnapshot{requests: map[string]requestStat{}}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		t, err := testenv.CPUTicks(env.PID(name))
		if err != nil {
			return s, fmt.Errorf("CPU time of %s: %w", name, err)
		}
		s.ticks += t
	}
	raw, err := env.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return s, fmt.Errorf("API server metrics: %w", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		m := durationLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := map[string]string{}
		for _, kv := range strings.Split(m[2], ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				labels[k] = strings.Trim(v, `"`)
			}
		}
		if labels["verb"] == "WATCH" {
			continue // a watch's duration is how long it stays open
		}
		kind := labels["verb"] + " " + labels["resource"]
		if sub := labels["subresource"]; sub != "" {
			kind += "/" + sub
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		st := s.requests[kind]
		if m[1] == "sum" {
			st.seconds += v
		} else {
			st.count += v
		}
		s.requests[kind] = st
	}
	return s, nil
}

// since prints what the API server did between before and s: its and
// etcd's CPU seconds, and the request kinds that took at least 1 % of the
// summed latency (count, summed latency).
func (s apiSnapshot) since(before apiSnapshot, what string) string {
	type row struct {
		kind string
		requestStat
	}
	var rows []row
	var total float64
	for kind, st := range s.requests {
		d := requestStat{count: st.count - before.requests[kind].count, seconds: st.seconds - before.requests[kind].seconds}
		if d.count > 0 {
			rows = append(rows, row{kind, d})
			total += d.seconds
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(b.seconds, a.seconds) })
	var b strings.Builder
	fmt.Fprintf(&b, "       %s: API server + etcd %.2f CPU s; requests (count, summed latency):", what, float64(s.ticks-before.ticks)/100)
	for _, r := range rows {
		if r.seconds < total/100 {
			break
		}
		fmt.Fprintf(&b, " %s %.0f %.2fs;", r.kind, r.count, r.seconds)
	}
	return strings.TrimSuffix(b.String(), ";")
}
