package main

import (
	"context"
	"fmt"
	"io"
)

// runX is a placeholder until the command lands; it fails loudly.
func runJournal(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "posbridge journal: not built yet")
	return exitFailure
}
