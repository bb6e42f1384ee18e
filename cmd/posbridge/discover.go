package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/posbridge/posbridge/internal/config"
	"github.com/posbridge/posbridge/internal/lan"
)

const discoverUsage = `usage: posbridge discover [flags]

Browses DNS-SD (mDNS) for Kushki ONE terminals and lists every instance that
answered: NAME (the terminal's name when its serial is in the configuration),
SERIAL (TXT "serial="), ADDRESS and PORT (IPv4 preferred), SERVICE, INSTANCE.
The vendor documents no DNS-SD service; posbridge's default is
_kushki-one._tcp, which the simulator advertises.

Exits 0 when at least one instance answered, 1 when none did (or the
browse failed), 2 on a bad command line.

The configuration is optional: it names terminals and gives the default
service and interfaces (discovery.service, discovery.interfaces). Without
--config or --dev it is read from ` + defaultConfigPath + ` when that file
exists, and ignored with a warning when it cannot be read.

Multicast goes out on every interface that is up and multicast-capable,
unless --iface names some (loopback works only when named).

Flags:
`

// discoverRow is one line of the output; JSON keeps every Found field.
type discoverRow struct {
	Name string `json:"name,omitempty"`
	lan.Found
	// Address is the preferred host:port, "" when no address is usable.
	Address string `json:"address"`
}

// runDiscover implements "posbridge discover".
func runDiscover(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("posbridge discover", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	load := configFlags(fs)
	timeout := fs.Duration("timeout", 5*time.Second, "browse for this long")
	ifaces := fs.StringArray("iface", nil, "network interface to browse on (repeatable; default: every multicast interface)")
	service := fs.String("service", "", "DNS-SD service type (default discovery.service, or "+lan.DefaultService+")")
	domain := fs.String("domain", "", "DNS-SD domain (default discovery.domain, or "+lan.DefaultDomain+")")
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, discoverUsage+fs.FlagUsages())
			return exitOK
		}
		fmt.Fprintf(stderr, "posbridge discover: %v\n\n%s%s", err, discoverUsage, fs.FlagUsages())
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "posbridge discover: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "posbridge discover: --timeout must be positive")
		return exitUsage
	}

	// The configuration is optional here: an explicit one must load, an
	// installed one is used when it can be.
	var cfg *config.Config
	switch {
	case fs.Changed("config") || fs.Changed("dev"):
		c, _, err := load()
		if err != nil {
			fmt.Fprintf(stderr, "posbridge discover: %v\n", err)
			return exitFailure
		}
		cfg = c
	case fileExists(defaultConfigPath):
		c, _, err := load()
		if err != nil {
			fmt.Fprintf(stderr, "posbridge discover: warning: configuration ignored (terminal names not shown): %v\n", err)
		}
		cfg = c
	}

	opts := lan.DiscoverOptions{Services: []string{*service}, Domain: *domain, Interfaces: *ifaces}
	names := map[string]string{}
	if cfg != nil {
		if *service == "" {
			opts.Services = []string{cfg.Discovery.Service}
		}
		if *domain == "" {
			opts.Domain = cfg.Discovery.Domain
		}
		if !fs.Changed("iface") {
			opts.Interfaces = cfg.Discovery.Interfaces
		}
		for _, t := range cfg.Terminals {
			names[strings.ToUpper(t.Serial)] = t.Name
		}
	}
	if opts.Services[0] == "" {
		opts.Services = []string{lan.DefaultService}
	}
	if !lan.ValidService(opts.Services[0]) {
		fmt.Fprintf(stderr, "posbridge discover: --service %q is not a DNS-SD service type such as %s\n", opts.Services[0], lan.DefaultService)
		return exitUsage
	}

	bctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	found, err := lan.Discover(bctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "posbridge discover: %v\n", err)
		if len(found) == 0 {
			return exitFailure
		}
	}

	rows := make([]discoverRow, 0, len(found))
	seen := map[string]bool{}
	for _, f := range found {
		rows = append(rows, discoverRow{Name: names[strings.ToUpper(f.Serial)], Found: f, Address: f.Address()})
		seen[strings.ToUpper(f.Serial)] = true
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			fmt.Fprintf(stderr, "posbridge discover: %v\n", err)
			return exitFailure
		}
	} else if len(rows) > 0 {
		printDiscoverTable(stdout, rows)
	}

	where := "every multicast interface"
	if len(opts.Interfaces) > 0 {
		where = strings.Join(opts.Interfaces, ", ")
	}
	if len(rows) == 0 {
		fmt.Fprintf(stderr, "posbridge discover: nothing answered for %s on %s within %v\n", opts.Services[0], where, *timeout)
		return exitFailure
	}
	if cfg != nil {
		for _, t := range cfg.Terminals {
			if !seen[strings.ToUpper(t.Serial)] {
				fmt.Fprintf(stderr, "posbridge discover: %s (serial %s) did not answer\n", t.Name, t.Serial)
			}
		}
	}
	return exitOK
}

func printDiscoverTable(w io.Writer, rows []discoverRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSERIAL\tADDRESS\tPORT\tSERVICE\tINSTANCE")
	for _, r := range rows {
		addr := "-"
		if a, ok := r.Addr(); ok {
			addr = a.String()
		} else if len(r.Addrs) > 0 {
			addr = r.Addrs[0].String() // only a link-local IPv6 address came
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", dash(r.Name), dash(r.Serial), addr, strconv.Itoa(r.Port),
			strings.TrimSuffix(r.Service, "."), r.Instance)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
