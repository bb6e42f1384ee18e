package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/posbridge/posbridge/internal/config"
)

const configUsage = `usage: posbridge config <command> [flags]

Configuration tools. The effective configuration is built from the
built-in defaults, then the file (--config, or ` + defaultConfigPath + `
when it exists, or the embedded development configuration with --dev), then
POSBRIDGE_* environment variables (POSBRIDGE_ + the key upper-cased with "."
as "_", e.g. POSBRIDGE_LOG_LEVEL), then the flags --listen, --data-dir and
--log-level.

Commands:
  print     the effective configuration as YAML, secrets redacted
  validate  load and check it; exit 0 when valid, 1 with every bad key named

Run 'posbridge config <command> --help' for a command's flags.
`

const configPrintUsage = `usage: posbridge config print [flags]

Prints the effective configuration as YAML, preceded by comments saying
where it came from (file, environment variables and flags that overrode
it). The output is itself a valid configuration file.

Secrets never live in the configuration: it names a file or an environment
variable that holds each one, and those names are printed, never the
values. A URL that carries a password (user:password@host) is printed with
the password replaced by xxxxx.

Exit codes: 0 printed, 1 the configuration cannot be loaded or is invalid
(every bad key is named), 2 bad command line.

Flags:
`

const configValidateUsage = `usage: posbridge config validate [flags]

Loads the configuration as "posbridge serve" would and checks it: unknown
keys, values (every bad key is named, with why), and, unless --no-secrets,
that every secret it names can be read (credential files readable and not
empty, environment variables set); values are never printed. Warns about
POSBRIDGE_* environment variables that name no key.

Exit codes: 0 valid, 1 invalid (each problem on its own line), 2 bad
command line.

Flags:
`

// runConfig implements "posbridge config".
func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, configUsage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, configUsage)
		return exitOK
	case "print":
		return configPrint(ctx, args[1:], stdout, stderr)
	case "validate":
		return configValidate(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "posbridge config: unknown command %q\n\n%s", args[0], configUsage)
	return exitUsage
}

// parseConfigCommand parses a config subcommand's flags. It returns -1 to
// go on, or the exit code.
func parseConfigCommand(fs *pflag.FlagSet, usage string, args []string, stdout, stderr io.Writer) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, usage+fs.FlagUsages())
			return exitOK
		}
		fmt.Fprintf(stderr, "%s: %v\n\n%s%s", fs.Name(), err, usage, fs.FlagUsages())
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage
	}
	return -1
}

func configPrint(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("posbridge config print", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	load := configFlags(fs)
	if code := parseConfigCommand(fs, configPrintUsage, args, stdout, stderr); code >= 0 {
		return code
	}
	cfg, source, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return exitFailure
	}
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(redacted(*cfg)); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return exitFailure
	}
	fmt.Fprintln(stdout, "# posbridge effective configuration (secrets redacted)")
	fmt.Fprintf(stdout, "# from: %s\n", source)
	if env := envOverrides(); len(env) > 0 {
		fmt.Fprintf(stdout, "# overridden by environment: %s\n", strings.Join(env, ", "))
	}
	if fl := flagOverrides(fs); len(fl) > 0 {
		fmt.Fprintf(stdout, "# overridden by flags: %s\n", strings.Join(fl, ", "))
	}
	if _, err := io.WriteString(stdout, out.String()); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return exitFailure
	}
	return exitOK
}

func configValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("posbridge config validate", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	load := configFlags(fs)
	noSecrets := fs.Bool("no-secrets", false, "do not check that the secrets it names can be read")
	if code := parseConfigCommand(fs, configValidateUsage, args, stdout, stderr); code >= 0 {
		return code
	}
	cfg, source, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return exitFailure
	}
	for _, name := range unusedEnv(cfg) {
		fmt.Fprintf(stderr, "warning: environment variable %s names no configuration key (ignored)\n", name)
	}
	if dev, _ := fs.GetBool("dev"); dev {
		// serve --dev generates the terminal credential at start.
		for i := range cfg.Terminals {
			cfg.Terminals[i].CredentialFile, cfg.Terminals[i].CredentialEnv = "", ""
		}
	}
	if !*noSecrets {
		if problems := secretProblems(cfg); len(problems) > 0 {
			fmt.Fprintf(stderr, "%s: %s: secrets cannot be read:\n", fs.Name(), source)
			for _, p := range problems {
				fmt.Fprintf(stderr, "%s\n", p)
			}
			return exitFailure
		}
	}
	fmt.Fprintf(stdout, "configuration ok: %s\n", source)
	return exitOK
}

// redacted returns a copy of c fit to print. Config holds no secret value
// (only the files and variables that hold them), but its URLs could carry a
// password in their user information; those are masked.
func redacted(c config.Config) config.Config {
	c.Cloud.BaseURL = redactURL(c.Cloud.BaseURL)
	c.Cloud.RawAPI.BaseURL = redactURL(c.Cloud.RawAPI.BaseURL)
	c.Terminals = append([]config.Terminal(nil), c.Terminals...)
	c.API.AllowedHosts = append([]string(nil), c.API.AllowedHosts...)
	c.API.AllowedOrigins = append([]string(nil), c.API.AllowedOrigins...)
	for i, o := range c.API.AllowedOrigins {
		c.API.AllowedOrigins[i] = redactURL(o)
	}
	return c
}

// redactURL masks the password of a URL's user information. A value that
// does not parse as a URL but holds an "@" is masked whole, since it may
// be a malformed URL with a password in it.
func redactURL(s string) string {
	if s == "" {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "xxxxx"
		}
		return s
	}
	if _, has := u.User.Password(); !has {
		return s
	}
	// Mask the password in the text itself: re-encoding the URL would turn
	// a {serial} placeholder into %7Bserial%7D.
	scheme, rest, _ := strings.Cut(s, "://")
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	user, _, _ := strings.Cut(authority[:at], ":")
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

// configKeys returns every leaf key of the configuration ("log.level"),
// which a POSBRIDGE_* variable may set (terminals is a list, set in the
// file only).
func configKeys() []string {
	var keys []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key := f.Tag.Get("mapstructure")
			if prefix != "" {
				key = prefix + "." + key
			}
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "time" {
				walk(key, f.Type)
				continue
			}
			keys = append(keys, key)
		}
	}
	walk("", reflect.TypeOf(config.Config{}))
	return keys
}

// envName is the POSBRIDGE_* variable of a key.
func envName(key string) string {
	return "POSBRIDGE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// envOverrides lists the POSBRIDGE_* variables set now that override a key.
func envOverrides() []string {
	var out []string
	for _, k := range configKeys() {
		if k == "terminals" {
			continue
		}
		if _, ok := os.LookupEnv(envName(k)); ok {
			out = append(out, envName(k))
		}
	}
	return out
}

// flagOverrides lists the configuration flags given on the command line.
func flagOverrides(fs *pflag.FlagSet) []string {
	var out []string
	for _, name := range []string{"listen", "data-dir", "log-level"} {
		if fs.Changed(name) {
			out = append(out, "--"+name)
		}
	}
	return out
}

// unusedEnv lists POSBRIDGE_* variables that are neither a key's variable
// nor named by the configuration as holding a secret: most likely a typo.
func unusedEnv(cfg *config.Config) []string {
	known := map[string]bool{}
	for _, k := range configKeys() {
		known[envName(k)] = true
	}
	known[cfg.API.TokenEnv] = true
	known[cfg.Cloud.RawAPI.CredentialEnv] = true
	for _, t := range cfg.Terminals {
		known[t.CredentialEnv] = true
	}
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "POSBRIDGE_") && !known[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// secretProblems tries every secret the configuration names and returns
// one line per secret that cannot be read, naming its key. The values are
// read and dropped, never returned.
func secretProblems(cfg *config.Config) []string {
	var out []string
	try := func(key, what, file, env string) {
		if file == "" && env == "" {
			return
		}
		if _, err := config.Secret(what, file, env); err != nil {
			out = append(out, key+": "+err.Error())
		}
	}
	try("api", "api token", cfg.API.TokenFile, cfg.API.TokenEnv)
	for i, t := range cfg.Terminals {
		try(fmt.Sprintf("terminals[%d]", i), "terminal "+t.Name, t.CredentialFile, t.CredentialEnv)
	}
	try("cloud.raw_api", "cloud.raw_api", cfg.Cloud.RawAPI.CredentialFile, cfg.Cloud.RawAPI.CredentialEnv)
	return out
}
