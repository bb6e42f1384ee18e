package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/posbridge/posbridge/configs"
	"github.com/posbridge/posbridge/internal/config"
)

// defaultConfigPath is read when --config is not given and the file exists.
const defaultConfigPath = "/etc/posbridge/posbridge.yaml"

// configFlags adds the flags every command that reads the configuration
// shares, and returns a loader bound to them.
func configFlags(fs *pflag.FlagSet) func() (*config.Config, string, error) {
	path := fs.String("config", "", "configuration file (default "+defaultConfigPath+" when it exists)")
	dev := fs.Bool("dev", false, "use the embedded development configuration (daemon + simulator on this machine)")
	fs.String("listen", "", "local REST API address (overrides listen)")
	fs.String("data-dir", "", "state directory (overrides data_dir)")
	fs.String("log-level", "", "debug, info, warn or error (overrides log.level)")
	return func() (*config.Config, string, error) {
		return loadConfig(*path, *dev, fs)
	}
}

// loadConfig builds the effective configuration: defaults, then the file (or
// the embedded dev configuration), then POSBRIDGE_* environment variables,
// then flags. Unknown keys in the file are errors naming the key. It returns
// the configuration, a description of where it came from, and an error.
func loadConfig(path string, dev bool, fs *pflag.FlagSet) (*config.Config, string, error) {
	v := viper.New()
	def := config.Default()
	setDefaults(v, "", reflect.ValueOf(def))
	v.SetConfigType("yaml")

	source := "built-in defaults"
	switch {
	case dev && path != "":
		return nil, "", errors.New("--dev and --config exclude each other")
	case dev:
		if err := v.MergeConfig(bytes.NewReader(configs.Dev)); err != nil {
			return nil, "", fmt.Errorf("embedded dev configuration: %w", err)
		}
		source = "embedded dev configuration"
	default:
		if path == "" {
			if _, err := os.Stat(defaultConfigPath); err == nil {
				path = defaultConfigPath
			}
		}
		if path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, "", fmt.Errorf("read configuration: %w", err)
			}
			if err := v.MergeConfig(bytes.NewReader(b)); err != nil {
				return nil, "", fmt.Errorf("%s: not valid YAML: %w", path, err)
			}
			source = path
		}
	}

	v.SetEnvPrefix("POSBRIDGE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for flag, key := range map[string]string{"listen": "listen", "data-dir": "data_dir", "log-level": "log.level"} {
		if f := fs.Lookup(flag); f != nil && f.Changed {
			v.Set(key, f.Value.String())
		}
	}

	var cfg config.Config
	err := v.UnmarshalExact(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.TagName = "mapstructure"
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", source, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, "", fmt.Errorf("%s: invalid configuration:\n%w", source, err)
	}
	return &cfg, source, nil
}

// setDefaults registers every leaf key of the default configuration with
// viper, so that POSBRIDGE_* environment variables can override any of them.
func setDefaults(v *viper.Viper, prefix string, rv reflect.Value) {
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		key := f.Tag.Get("mapstructure")
		if prefix != "" {
			key = prefix + "." + key
		}
		fv := rv.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "time" {
			setDefaults(v, key, fv)
			continue
		}
		v.SetDefault(key, fv.Interface())
	}
}
