package main

import (
	"context"
	"fmt"
	"io"
)

// runX is a placeholder until the command lands; it fails loudly.
func runDiscover(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "posbridge discover: not built yet")
	return exitFailure
}
