// Package configs holds posbridge's configuration files: posbridge.yaml, the
// commented example for a register PC, and dev.yaml, the embedded default that
// "posbridge serve --dev" runs against a local simulator.
package configs

import _ "embed"

// Example is configs/posbridge.yaml.
//
//go:embed posbridge.yaml
var Example []byte

// Dev is configs/dev.yaml: the embedded default configuration for running the
// daemon against the simulator on one machine.
//
//go:embed dev.yaml
var Dev []byte
