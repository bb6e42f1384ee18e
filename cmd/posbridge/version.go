package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
)

// version is stamped at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] != "--help" && args[0] != "-h" {
		fmt.Fprintln(stderr, "usage: posbridge version")
		return exitUsage
	}
	if len(args) > 0 {
		fmt.Fprintln(stdout, "usage: posbridge version\n\nPrints the version of this binary.")
		return exitOK
	}
	fmt.Fprintf(stdout, "posbridge %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
