package command

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/internal/cli"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// parse builds the run command as main does, parses args and loads options.
func parse(t *testing.T, args ...string) *runOptions {
	t.Helper()
	root := newCmdRoot()
	got := &runOptions{}
	for _, c := range root.Commands() {
		if c.Name() == "run" {
			c.RunE = func(cmd *cobra.Command, _ []string) error {
				return cli.Load(cmd, got)
			}
		}
	}
	root.SetArgs(append([]string{"run"}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return got
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(file, []byte("batch_size: 10\nworkload: chunk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		env   string
		args  []string
		batch int
	}{
		{"default", "", nil, 100},
		{"file over default", "", []string{"--config", file}, 10},
		{"env over file", "20", []string{"--config", file}, 20},
		{"flag over env", "20", []string{"--config", file, "--batch-size", "30"}, 30},
		{"flag over default", "", []string{"--batch-size", "40"}, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("FERRY_BATCH_SIZE", tc.env)
			}
			o := parse(t, tc.args...)
			if got, want := o.BatchSize, tc.batch; got != want {
				t.Errorf("batch_size = %d, want %d", got, want)
			}
		})
	}
	t.Run("file keys other than the one overridden stay", func(t *testing.T) {
		o := parse(t, "--config", file, "--batch-size", "5")
		if got, want := o.Workload, "chunk"; got != want {
			t.Errorf("workload = %q, want %q", got, want)
		}
	})
}

// flagOnly are flags that are no configuration key: health's checks, the
// hidden flags a parent passes its children, and mockllm's alias.
var flagOnly = []string{"http", "timeout", "subject", "parent_pid"}

// TestConfigFileListsEveryKey keeps configs/ferry.yaml and the commands'
// flags in step: every key is documented with the flag's default.
func TestConfigFileListsEveryKey(t *testing.T) {
	v := viper.New()
	v.SetConfigFile("../../configs/ferry.yaml")
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	fileKeys := v.AllKeys()
	var keys []string
	for _, k := range cli.Keys(newCmdRoot()) {
		if k != "config" && !slices.Contains(flagOnly, k) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if !slices.Contains(fileKeys, k) {
			t.Errorf("configs/ferry.yaml lacks key %q", k)
		}
	}
	for _, k := range fileKeys {
		if !slices.Contains(keys, k) {
			t.Errorf("configs/ferry.yaml has unknown key %q", k)
		}
	}
	root := newCmdRoot()
	for _, c := range root.Commands() {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			key := strings.ReplaceAll(f.Name, "-", "_")
			if !v.IsSet(key) || f.Hidden || key == "modes" || key == "nats_url" || key == "help" {
				return
			}
			got, want := v.GetString(key), f.DefValue
			if f.Value.Type() == "stringArray" { // a YAML list: compare it as the flag prints it
				got = "[" + strings.Join(v.GetStringSlice(key), ",") + "]"
			}
			if got != want && !(got == "" && want == "0") && !(got == "false" && want == "false") {
				if want == "0s" && got == "0s" {
					return
				}
				t.Errorf("%s %s: configs/ferry.yaml says %q, flag default is %q", c.Name(), key, got, want)
			}
		})
	}
}
