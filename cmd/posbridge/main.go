// Command posbridge is the checkout-side payment bridge: a daemon beside the
// cash register that connects POS software to a Kushki ONE SmartPOS terminal,
// plus the tools to run, inspect and test it. It is the only place where the
// packages are wired together.
//
// Usage: posbridge <command> [flags]; "posbridge help" lists the commands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes, as people expect them.
const (
	exitOK      = 0 // success
	exitFailure = 1 // the command ran and failed (or found a problem)
	exitUsage   = 2 // bad command line
)

// command is one subcommand. run gets the arguments after the command name
// and returns the exit code; it prints its own errors to stderr.
type command struct {
	name  string
	short string
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the daemon: local REST API, journal, terminal routes, recovery", runServe},
		{"sim", "run the Kushki ONE terminal simulator", runSim},
		{"discover", "list Kushki ONE terminals found on the LAN by DNS-SD", runDiscover},
		{"journal", "inspect the journal: ls, show ID, export, check", runJournal},
		{"config", "configuration tools: print (secrets redacted)", runConfig},
		{"health", "ask a running daemon whether it is ready (exit 0 when ready)", runHealth},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	case "-v", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "posbridge: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "posbridge: a payment bridge between POS software and a Kushki ONE SmartPOS terminal.")
	fmt.Fprintln(w, "\nUsage: posbridge <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w, "\nRun 'posbridge <command> --help' for a command's flags.")
}
