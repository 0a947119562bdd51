// Command authzbench is the Go side of Plannt's hot-path bench (bench/hot-path.ts):
//
//	authzbench serve [-listen 127.0.0.1:0]   an allow-all Envoy ext_authz v3 server (grpc-go + go-control-plane)
//	authzbench load -target host:port -requests FILE [options]   a load generator printing one JSON report
//
// Both are baselines and instruments, not part of Plannt.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: authzbench serve|load [flags] (-h for the flags)")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q: want serve or load", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "authzbench:", err)
		os.Exit(1)
	}
}
