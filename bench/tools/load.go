package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const checkMethod = "/envoy.service.auth.v3.Authorization/Check"

// rawCodec sends a pre-serialised CheckRequest as it is and keeps the response's bytes, so the generator
// spends no CPU on protobuf beyond reading the answer's status.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*p = append((*p)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// readRequests reads a file of records, each a big-endian uint32 length then that many bytes.
func readRequests(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 4 {
			return nil, errors.New("requests file: truncated length prefix")
		}
		n := binary.BigEndian.Uint32(data)
		if uint64(len(data)-4) < uint64(n) {
			return nil, errors.New("requests file: truncated record")
		}
		out = append(out, data[4:4+n])
		data = data[4+n:]
	}
	if len(out) == 0 {
		return nil, errors.New("requests file: no records")
	}
	return out, nil
}

type loadOptions struct {
	target      string
	calls       int
	concurrency int
	rate        float64
	deadline    time.Duration
	conns       int
	maxInFlight int
}

// outcome of one call: the HTTP status of the answer, or the gRPC error code (+1000 to keep them apart).
type outcome struct {
	latency time.Duration
	code    int
}

const grpcErrorBase = 1000

type report struct {
	Calls           int            `json:"calls"`
	Mode            string         `json:"mode"`
	Concurrency     int            `json:"concurrency,omitempty"`
	Rate            float64        `json:"rate,omitempty"`
	Conns           int            `json:"conns"`
	OK              int            `json:"ok"`
	Allowed         int            `json:"allowed"`
	Denied          int            `json:"denied"`
	ByHTTPStatus    map[string]int `json:"byHttpStatus"`
	GRPCErrors      map[string]int `json:"grpcErrors"`
	FirstError      string         `json:"firstError,omitempty"`
	ElapsedMs       float64        `json:"elapsedMs"`
	ChecksPerSecond float64        `json:"checksPerSecond"`
	LatencyUs       latencyUs      `json:"latencyUs"`
	CPUUsPerCall    float64        `json:"cpuUsPerCall"`
	MaxInFlight     int64          `json:"maxInFlight"`
}

type latencyUs struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	var o loadOptions
	fs.StringVar(&o.target, "target", "", "host:port of the ext_authz server (loopback)")
	file := fs.String("requests", "", "file of length-prefixed serialised CheckRequests, used in order and cycled")
	fs.IntVar(&o.calls, "calls", 0, "calls to make (default: one per record)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "closed loop: calls in flight")
	fs.Float64Var(&o.rate, "rate", 0, "open loop: calls per second, latency counted from each call's scheduled time")
	fs.DurationVar(&o.deadline, "deadline", time.Second, "per-call gRPC deadline (Envoy's ext_authz timeout)")
	fs.IntVar(&o.conns, "conns", 1, "HTTP/2 connections, calls spread round robin (one Envoy worker keeps one)")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 20000, "open loop: stop scheduling past this many outstanding calls")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.target == "" || *file == "" {
		return errors.New("load needs -target and -requests")
	}
	requests, err := readRequests(*file)
	if err != nil {
		return err
	}
	if o.calls == 0 {
		o.calls = len(requests)
	}
	if o.calls < 1 || o.concurrency < 1 || o.conns < 1 || o.rate < 0 {
		return errors.New("load: need calls >= 1, concurrency >= 1, conns >= 1, rate >= 0")
	}
	conns := make([]*grpc.ClientConn, o.conns)
	for i := range conns {
		// One ClientConn to a passthrough target is one HTTP/2 connection.
		c, err := grpc.NewClient("passthrough:///"+o.target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		if err != nil {
			return err
		}
		defer c.Close()
		conns[i] = c
	}
	r := &runner{o: o, requests: requests, conns: conns}
	return json.NewEncoder(os.Stdout).Encode(r.measure())
}

type runner struct {
	o        loadOptions
	requests [][]byte
	conns    []*grpc.ClientConn
	results  []outcome
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	firstErr atomic.Pointer[string]
}

// call sends call k (record k mod len) and returns its outcome code.
func (r *runner) call(k int) int {
	if n := r.inFlight.Add(1); n > r.maxSeen.Load() {
		r.maxSeen.Store(n) // racy max, good enough for a peak indicator
	}
	defer r.inFlight.Add(-1)
	ctx, cancel := context.WithTimeout(context.Background(), r.o.deadline)
	defer cancel()
	var resp []byte
	err := r.conns[k%len(r.conns)].Invoke(ctx, checkMethod, r.requests[k%len(r.requests)], &resp)
	code := 0
	if err == nil {
		code, err = httpStatusOf(resp) // an unreadable answer counts as Unknown
	}
	if err != nil {
		msg := err.Error()
		r.firstErr.CompareAndSwap(nil, &msg)
		return grpcErrorBase + int(status.Code(err))
	}
	return code
}

// closedLoop runs calls [0, n) with o.concurrency in flight.
func (r *runner) closedLoop(n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.o.concurrency, n) {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= n {
					return
				}
				start := time.Now()
				code := r.call(k)
				r.results[k] = outcome{time.Since(start), code}
			}
		})
	}
	wg.Wait()
}

// openLoop starts call i at t0 + i/rate whether or not earlier calls have answered, so a stalled server
// is not hidden by the generator waiting for it (no coordinated omission).
func (r *runner) openLoop(n int, t0 time.Time) {
	interval := time.Duration(float64(time.Second) / r.o.rate)
	var wg sync.WaitGroup
	for i := 0; i < n; {
		due := min(n, int(time.Since(t0)/interval)+1)
		for ; i < due && r.inFlight.Load() < int64(r.o.maxInFlight); i++ {
			k, scheduled := i, t0.Add(time.Duration(i)*interval) // i moves on before the call starts
			wg.Go(func() {
				code := r.call(k)
				r.results[k] = outcome{time.Since(scheduled), code}
			})
		}
		if i < n {
			time.Sleep(time.Until(t0.Add(time.Duration(i) * interval)))
		}
	}
	wg.Wait()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r *runner) measure() *report {
	r.results = make([]outcome, r.o.calls)
	cpu0 := cpuTime()
	t0 := time.Now()
	mode := "closed"
	if r.o.rate > 0 {
		mode = "open"
		r.openLoop(r.o.calls, t0)
	} else {
		r.closedLoop(r.o.calls)
	}
	elapsed := time.Since(t0)
	cpu := cpuTime() - cpu0

	rep := &report{
		Calls: r.o.calls, Mode: mode, Conns: r.o.conns,
		ByHTTPStatus: map[string]int{}, GRPCErrors: map[string]int{},
		ElapsedMs:       float64(elapsed) / 1e6,
		ChecksPerSecond: float64(r.o.calls) / elapsed.Seconds(),
		CPUUsPerCall:    float64(cpu) / 1e3 / float64(r.o.calls),
		MaxInFlight:     r.maxSeen.Load(),
	}
	if msg := r.firstErr.Load(); msg != nil {
		rep.FirstError = *msg
	}
	if mode == "open" {
		rep.Rate = r.o.rate
	} else {
		rep.Concurrency = r.o.concurrency
	}
	lat := make([]time.Duration, len(r.results))
	var sum time.Duration
	for i, res := range r.results {
		lat[i] = res.latency
		sum += res.latency
		if res.code >= grpcErrorBase {
			rep.GRPCErrors[codes.Code(res.code-grpcErrorBase).String()]++
			continue
		}
		rep.OK++
		rep.ByHTTPStatus[strconv.Itoa(res.code)]++
		if res.code == allowedHTTPStatusCode {
			rep.Allowed++
		} else {
			rep.Denied++
		}
	}
	slices.Sort(lat)
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	rank := func(p float64) time.Duration {
		return lat[max(0, min(len(lat)-1, int(math.Ceil(p*float64(len(lat))))-1))] // nearest rank
	}
	rep.LatencyUs = latencyUs{P50: us(rank(0.5)), P90: us(rank(0.9)), P99: us(rank(0.99)), Max: us(lat[len(lat)-1]), Mean: us(sum) / float64(len(lat))}
	return rep
}
