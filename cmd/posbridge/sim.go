package main

import (
	"context"
	"fmt"
	"io"
)

// runX is a placeholder until the command lands; it fails loudly.
func runSim(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "posbridge sim: not built yet")
	return exitFailure
}
