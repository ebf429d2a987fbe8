// Package cli loads a command's options: one struct per command, built of
// groups, whose fields carry their config key (mapstructure tag), help and
// shorthand. AddFlags registers the flags from a struct of defaults; Load
// merges defaults, a config file, FERRY_ environment and flags (highest
// wins) into the struct with a local viper; Echo turns it back into the
// configuration a report prints, without secrets.
//
// It is cmd/ferry's machinery and knows no command: what the keys mean and
// their defaults belong to the packages that take them.
package cli

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/ferrylab/ferry/internal/list"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

var (
	// ErrInvalidConfig is wrapped by every error naming a bad key or value
	// (list.Parse's too).
	ErrInvalidConfig = list.ErrInvalid
	// ErrUsage marks a command-line mistake: a bad flag or config file.
	ErrUsage = errors.New("usage")
)

// Invalid is the error for key holding v, and why it is wrong.
func Invalid(key string, v any, why string) error {
	return fmt.Errorf("%w: %s=%v: %s", ErrInvalidConfig, key, v, why)
}

// Load merges defaults, the config file (key "config"), FERRY_* env and
// the flags of cmd (highest wins) into the struct o points to.
func Load(cmd *cobra.Command, o any) error {
	v := viper.New()
	v.SetEnvPrefix("FERRY")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	var bindErr error
	bind := func(f *pflag.Flag) {
		if err := v.BindPFlag(strings.ReplaceAll(f.Name, "-", "_"), f); err != nil {
			bindErr = err
		}
	}
	cmd.Flags().VisitAll(bind)
	cmd.InheritedFlags().VisitAll(bind)
	if bindErr != nil {
		return bindErr
	}
	if path := v.GetString("config"); path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("%w: config=%s: %v", ErrUsage, path, err)
		}
		file := viper.New() // the file's own keys, without flags and env
		file.SetConfigFile(path)
		if err := file.ReadInConfig(); err != nil {
			return fmt.Errorf("%w: config=%s: %v", ErrUsage, path, err)
		}
		known := Keys(cmd.Root())
		for _, k := range file.AllKeys() {
			if !slices.Contains(known, k) {
				return fmt.Errorf("%w: config file %s: unknown key %q", ErrUsage, path, k)
			}
		}
	}
	hook := mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc(), pairsHook)
	if err := v.Unmarshal(o, viper.DecodeHook(hook)); err != nil {
		// mapstructure lists errors on several lines; a user gets one.
		msg := strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):")
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(strings.Fields(msg), " "))
	}
	return nil
}

// Keys lists every config key: the flags of every command, as keys.
func Keys(root *cobra.Command) []string {
	var keys []string
	var walk func(c *cobra.Command)
	add := func(f *pflag.Flag) {
		if k := strings.ReplaceAll(f.Name, "-", "_"); !slices.Contains(keys, k) && k != "help" {
			keys = append(keys, k)
		}
	}
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	slices.Sort(keys)
	return keys
}

// Echo is the configuration in o as a report prints it: every set key but
// config and the secrets (tag secret:"true"), durations as text, URLs
// (tag redact:"true") without credentials.
func Echo(o any) map[string]any {
	m := map[string]any{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f, fv := t.Field(i), v.Field(i)
			tag := f.Tag.Get("mapstructure")
			switch {
			case f.Anonymous:
				walk(fv)
			case tag == "config" || f.Tag.Get("secret") == "true" || fv.IsZero():
			case f.Type == reflect.TypeFor[time.Duration]():
				m[tag] = time.Duration(fv.Int()).String()
			case f.Tag.Get("redact") == "true":
				m[tag] = natsconn.Redact(fv.String())
			default:
				m[tag] = fv.Interface()
			}
		}
	}
	walk(reflect.Indirect(reflect.ValueOf(o)))
	return m
}

// pairsHook lets a list of key=value pairs (--param) be written in a
// config file as a map too ("param: {shingle: 5}"), and in the FERRY_
// environment as one string of pairs separated by spaces.
func pairsHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[[]string]() {
		return data, nil
	}
	switch v := data.(type) {
	case map[string]any:
		pairs := make([]string, 0, len(v))
		for k, x := range v {
			pairs = append(pairs, fmt.Sprintf("%s=%v", k, x))
		}
		slices.Sort(pairs)
		return pairs, nil
	case string:
		return strings.Fields(v), nil
	}
	return data, nil
}
