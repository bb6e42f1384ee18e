//go:build !failpoint

// Package failpoint marks named points of a payment's life where crash tests
// kill the process. In normal builds Inject is an empty function the compiler
// removes; the real implementation is compiled in only with the build tag
// "failpoint" (go build -tags failpoint), which production builds never use.
package failpoint

// Enabled reports whether failpoints are compiled in.
const Enabled = false

// Inject does nothing in builds without the "failpoint" tag.
func Inject(name string) {}
