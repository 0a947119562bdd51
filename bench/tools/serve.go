package main

import (
	"context"
	"encoding/json"
	"flag"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// allowAll answers every Check with the ok_response a paid Plannt answer carries (src/core/response.ts:
// payment hash, service, amount; Authorization and the uses-remaining header removed), deciding nothing.
type allowAll struct {
	authv3.UnimplementedAuthorizationServer
}

var paymentHashHex = strings.Repeat("ab", 32)

func header(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

func (allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	// Built per call, as Plannt and the grpc-js allow-all server build theirs.
	return &authv3.CheckResponse{
		Status: &status.Status{Code: 0},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{
				header("x-plannt-payment-hash", paymentHashHex),
				header("x-plannt-service", "bench"),
				header("x-plannt-amount-sats", "10"),
			},
			HeadersToRemove: []string{"authorization", "x-plannt-uses-remaining"},
		}},
	}, nil
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// The options Plannt's grpc-js server sets (src/server/grpc-server.ts).
	srv := grpc.NewServer(
		grpc.MaxRecvMsgSize(1024*1024),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge:      300 * time.Second,
			MaxConnectionAgeGrace: 30 * time.Second,
		}),
	)
	authv3.RegisterAuthorizationServer(srv, allowAll{})
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		srv.Stop()
	}()
	// One JSON line tells the driver the port; then serve until signalled.
	if err := json.NewEncoder(os.Stdout).Encode(map[string]int{"port": lis.Addr().(*net.TCPAddr).Port, "pid": os.Getpid()}); err != nil {
		return err
	}
	return srv.Serve(lis)
}
