package main

import (
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/lab"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/report"
	"github.com/ferrylab/ferry/workload"
	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Each command reads its own options struct, built from the groups below.
// The mapstructure tag is the key in config files; the env var is FERRY_
// plus the key upper-cased; the flag is the key with dashes. Defaults are
// the packages' own (coordinator.Config.WithDefaults and the like), shown
// in each flag and kept in step with configs/ferry.yaml by a test.

// logOpts are the root's persistent keys, read by every command.
type logOpts struct {
	Config    string `mapstructure:"config"`
	LogLevel  string `mapstructure:"log_level"`
	LogFormat string `mapstructure:"log_format"`
}

// logger builds the structured logger on stderr.
func (o logOpts) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, invalid("log_level", o.LogLevel, "must be debug, info, warn or error")
	}
	ho := &slog.HandlerOptions{Level: level}
	switch o.LogFormat {
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, ho)), nil
	}
	return nil, invalid("log_format", o.LogFormat, "must be text or json")
}

// natsOpts are a NATS client's keys.
type natsOpts struct {
	NATSURL       string `mapstructure:"nats_url"`
	NATSUser      string `mapstructure:"nats_user"`
	NATSPassword  string `mapstructure:"nats_password" secret:"true"`
	NATSToken     string `mapstructure:"nats_token" secret:"true"`
	NATSNKeySeed  string `mapstructure:"nats_nkey_seed"`
	NATSCredsFile string `mapstructure:"nats_creds"`
	NATSTLSCA     string `mapstructure:"nats_tls_ca"`
	NATSTLSCert   string `mapstructure:"nats_tls_cert"`
	NATSTLSKey    string `mapstructure:"nats_tls_key"`
}

func addNATSFlags(fs *pflag.FlagSet, def string) {
	fs.String("nats-url", def, "NATS server URL(s), comma separated")
	fs.String("nats-user", "", "NATS user (password from FERRY_NATS_PASSWORD)")
	fs.String("nats-password", "", "NATS password; prefer the FERRY_NATS_PASSWORD env var")
	fs.String("nats-token", "", "NATS token; prefer the FERRY_NATS_TOKEN env var")
	fs.String("nats-nkey-seed", "", "path to an nkey seed file")
	fs.String("nats-creds", "", "path to a NATS .creds file")
	fs.String("nats-tls-ca", "", "CA bundle to verify the NATS server")
	fs.String("nats-tls-cert", "", "client certificate for mutual TLS")
	fs.String("nats-tls-key", "", "client key for mutual TLS")
}

func (o natsOpts) auth() natsconn.Auth {
	return natsconn.Auth{
		User: o.NATSUser, Password: o.NATSPassword, Token: o.NATSToken,
		NKeySeed: o.NATSNKeySeed, CredsFile: o.NATSCredsFile,
		TLSCA: o.NATSTLSCA, TLSCert: o.NATSTLSCert, TLSKey: o.NATSTLSKey,
	}
}

// corpusOpts say where documents come from.
type corpusOpts struct {
	Docs        int64  `mapstructure:"docs"`
	DocWords    int    `mapstructure:"doc_words"`
	DocBytes    int    `mapstructure:"doc_bytes"`
	Seed        uint64 `mapstructure:"seed"`
	Input       string `mapstructure:"input"`
	MaxDocs     int64  `mapstructure:"max_docs"`
	MaxDocBytes int    `mapstructure:"max_doc_bytes"`
}

func addCorpusFlags(fs *pflag.FlagSet) {
	fs.Int64("docs", 100000, "documents in the generated corpus (ignored with --input)")
	fs.Int("doc-words", 100, "words per generated document")
	fs.Int("doc-bytes", 0, "exact bytes per generated document, overriding --doc-words (0 = off)")
	fs.Uint64("seed", 1, "corpus seed: the generated corpus is a function of it")
	fs.String("input", "", "read documents from a file (one per line), a .jsonl file (text field) or a folder of .txt/.md files")
	fs.Int64("max-docs", 0, "refuse inputs with more documents than this (0 = unlimited)")
	fs.Int("max-doc-bytes", proto.DefaultMaxDocBytes, "refuse documents larger than this many bytes")
}

func (o corpusOpts) input() (lab.Input, error) {
	switch {
	case o.Docs < 0:
		return lab.Input{}, invalid("docs", o.Docs, "must be positive")
	case o.DocWords <= 0:
		return lab.Input{}, invalid("doc_words", o.DocWords, "must be at least 1")
	case o.DocBytes < 0:
		return lab.Input{}, invalid("doc_bytes", o.DocBytes, "must be positive")
	case o.MaxDocBytes <= 0:
		return lab.Input{}, invalid("max_doc_bytes", o.MaxDocBytes, "must be at least 1")
	}
	return lab.Input{
		Path:   o.Input,
		Limits: corpus.Limits{MaxDocBytes: o.MaxDocBytes, MaxDocs: o.MaxDocs},
		Gen:    corpus.GenConfig{Seed: o.Seed, Docs: o.Docs, Words: o.DocWords, DocBytes: o.DocBytes},
	}, nil
}

// jobOpts are a job's keys (run, coordinator, sweep, pipeline).
type jobOpts struct {
	corpusOpts     `mapstructure:",squash"`
	Modes          string        `mapstructure:"modes"`
	Workers        int           `mapstructure:"workers"`
	Workload       string        `mapstructure:"workload"`
	BatchSize      int           `mapstructure:"batch_size"`
	Out            string        `mapstructure:"out"`
	Format         string        `mapstructure:"format"`
	Codec          string        `mapstructure:"codec"`
	Compress       string        `mapstructure:"compress"`
	InFlight       int           `mapstructure:"inflight"`
	MaxAttempts    int           `mapstructure:"max_attempts"`
	BatchTimeout   time.Duration `mapstructure:"batch_timeout"`
	WorkerWait     time.Duration `mapstructure:"worker_wait"`
	Quiet          bool          `mapstructure:"quiet"`
	TimeoutFloor   time.Duration `mapstructure:"timeout_floor"`
	TimeoutCeil    time.Duration `mapstructure:"timeout_ceil"`
	StopGrace      time.Duration `mapstructure:"stop_grace"`
	Dispatch       string        `mapstructure:"dispatch"`
	JobID          string        `mapstructure:"job_id"`
	Batch          string        `mapstructure:"batch"`
	OverheadTarget float64       `mapstructure:"overhead_target"`
	// workload parameters
	Dim          int           `mapstructure:"dim"`
	ChunkTokens  int           `mapstructure:"chunk_tokens"`
	ChunkOverlap int           `mapstructure:"chunk_overlap"`
	SpinCost     time.Duration `mapstructure:"spin_cost"`
	OutBytes     int           `mapstructure:"out_bytes"`
	ModelSeed    uint64        `mapstructure:"model_seed"`
	MaxPayload   int           `mapstructure:"max_payload"` // the embedded broker's (run, sweep, pipeline)
}

// addJobFlags registers the job keys; modes' default is the command's.
func addJobFlags(fs *pflag.FlagSet, modes string) {
	def := coordinator.Config{}.WithDefaults()
	fs.String("modes", modes, "modes to run, in order: "+strings.Join(coordinator.Modes(), ", "))
	fs.Int("workers", 0, "workers: goroutines in-process, worker processes for processes mode (0 = usable cores)")
	fs.String("workload", "embed", "workload: "+strings.Join(workload.Names(), ", "))
	fs.Int("batch-size", def.BatchSize, "documents per batch")
	addCorpusFlags(fs)
	fs.String("out", "", "write results in input order to FILE (.npy float32 matrix or .jsonl)")
	fs.StringP("format", "f", "text", "report format: "+strings.Join(report.Formats, ", "))
	fs.String("codec", def.Codec, "wire codec: "+strings.Join(proto.CodecNames(), ", "))
	fs.String("compress", "", `compress batches and results on the wire: "" (off) or s2`)
	fs.Int("inflight", def.InFlight, "batches in flight per worker process (pipelining)")
	fs.Int("max-attempts", def.MaxAttempts, "sends of a batch before it is split to isolate bad documents")
	fs.Duration("batch-timeout", 0, "reply deadline per batch (0 = derived from measured compute time)")
	fs.Duration("worker-wait", def.WorkerWait, "how long to wait for workers to attach")
	fs.Duration("timeout-floor", def.TimeoutFloor, "lower bound of the derived reply deadline")
	fs.Duration("timeout-ceil", def.TimeoutCeil, "upper bound of the derived reply deadline")
	addDispatchFlag(fs)
	fs.String("job-id", "", "job ID for dispatch=jetstream; a coordinator restarted with the same ID resumes (\"\" = a new random one)")
	fs.Duration("stop-grace", def.StopGrace, "on SIGTERM/Ctrl-C, how long batches in flight may finish before exit (0 = don't wait)")
	fs.BoolP("quiet", "q", false, "no progress output")
	fs.String("batch", "fixed", "batch sizing: fixed (batch_size) or auto (adapt during the run, starting at batch_size)")
	fs.Float64("overhead-target", def.OverheadTarget, "per-batch overhead share that --batch auto and ferry recommend aim to stay under")
	p := workload.Params{}.WithDefaults()
	fs.Int("dim", 0, fmt.Sprintf("embedding width (0 = %d)", p.Dim))
	fs.Int("chunk-tokens", 0, fmt.Sprintf("chunk window in tokens (0 = %d)", p.ChunkTokens))
	fs.Int("chunk-overlap", 0, "tokens shared by neighbouring chunks (0 = min(32, chunk_tokens/8))")
	fs.Duration("spin-cost", 0, fmt.Sprintf("spin workload CPU per document (0 = %s)", time.Duration(p.SpinCostNs)))
	fs.Int("out-bytes", 0, fmt.Sprintf("spin and noop workloads: output bytes per document (0 = %d)", p.OutBytes))
	fs.Uint64("model-seed", 0, fmt.Sprintf("infer workload weights seed (0 = %d)", p.Seed))
}

// addMaxPayloadFlag registers the embedded broker's max_payload.
func addMaxPayloadFlag(fs *pflag.FlagSet) {
	fs.Int("max-payload", broker.DefaultMaxPayload, "embedded broker's max message size in bytes")
}

// addDispatchFlag registers --dispatch (jobs, and workers: a worker given
// jetstream also pulls batches from the stream).
func addDispatchFlag(fs *pflag.FlagSet) {
	fs.String("dispatch", coordinator.DispatchRequest, "how processes mode sends batches: request (request/reply), jetstream (durable streams), or both, comma separated, to compare")
}

// job validates the job keys and builds the coordinator's Config.
func (o jobOpts) job() (coordinator.Config, error) {
	switch {
	case o.Workers < 0:
		return coordinator.Config{}, invalid("workers", o.Workers, "must be positive (0 = usable cores)")
	case o.BatchSize < 0:
		return coordinator.Config{}, invalid("batch_size", o.BatchSize, "must be at least 1")
	case o.InFlight <= 0:
		return coordinator.Config{}, invalid("inflight", o.InFlight, "must be at least 1")
	case o.MaxAttempts <= 0:
		return coordinator.Config{}, invalid("max_attempts", o.MaxAttempts, "must be at least 1")
	case o.MaxDocBytes <= 0:
		return coordinator.Config{}, invalid("max_doc_bytes", o.MaxDocBytes, "must be at least 1")
	case !slices.Contains(report.Formats, o.Format):
		return coordinator.Config{}, invalid("format", o.Format, "must be one of "+strings.Join(report.Formats, ", "))
	case !slices.Contains(workload.Names(), o.Workload):
		return coordinator.Config{}, invalid("workload", o.Workload, "must be one of "+strings.Join(workload.Names(), ", "))
	case o.SpinCost < 0:
		return coordinator.Config{}, invalid("spin_cost", o.SpinCost, "must be positive")
	case o.Batch != "fixed" && o.Batch != "auto" && o.Batch != "":
		return coordinator.Config{}, invalid("batch", o.Batch, "must be fixed or auto")
	case o.StopGrace < 0:
		return coordinator.Config{}, invalid("stop_grace", o.StopGrace, "must be positive (0 = don't wait)")
	case !slices.Contains(proto.CompressNames(), o.Compress):
		return coordinator.Config{}, invalid("compress", o.Compress, `must be "" (off) or s2`)
	}
	grace := o.StopGrace
	if grace == 0 {
		grace = -1 // the coordinator's "none"; its zero means the default
	}
	workers := o.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	cfg := coordinator.Config{
		Workload: o.Workload,
		Params: workload.Params{
			Dim: o.Dim, ChunkTokens: o.ChunkTokens, ChunkOverlap: o.ChunkOverlap,
			SpinCostNs: int64(o.SpinCost), OutBytes: o.OutBytes, Seed: o.ModelSeed,
		},
		BatchSize: o.BatchSize, Workers: workers, Codec: o.Codec, Compress: o.Compress, InFlight: o.InFlight,
		MaxAttempts: o.MaxAttempts, BatchTimeout: o.BatchTimeout, WorkerWait: o.WorkerWait,
		Limits:    proto.Limits{MaxDocBytes: o.MaxDocBytes},
		AutoBatch: o.Batch == "auto", OverheadTarget: o.OverheadTarget,
		TimeoutFloor: o.TimeoutFloor, TimeoutCeil: o.TimeoutCeil, StopGrace: grace,
	}
	return cfg, cfg.Validate()
}

// lab builds the lab's Config for the job keys; the caller adds where
// processes mode runs.
func (o jobOpts) lab(cmd *cobra.Command, all any, log *slog.Logger) (lab.Config, error) {
	if o.BatchSize == 0 { // a job's batch size is set (the sweep's points set their own)
		return lab.Config{}, invalid("batch_size", o.BatchSize, "must be at least 1")
	}
	job, err := o.job()
	if err != nil {
		return lab.Config{}, err
	}
	in, err := o.input()
	if err != nil {
		return lab.Config{}, err
	}
	modes, err := parseList(o.Modes, "modes", oneOf(coordinator.Modes()))
	if err == nil && len(modes) == 0 {
		err = invalid("modes", o.Modes, "no mode given")
	}
	if err != nil {
		return lab.Config{}, err
	}
	dispatch, err := o.dispatches()
	if err != nil {
		return lab.Config{}, err
	}
	cfg := lab.Config{
		Job: job, Modes: modes, Dispatch: dispatch, JobID: o.JobID, Input: in, Out: o.Out,
		Report: configMap(all), Format: o.Format, Stdout: cmd.OutOrStdout(), Logger: log,
	}
	if !o.Quiet {
		cfg.Progress = progress
	}
	return cfg, nil
}

// dispatches parses the dispatch key.
func (o jobOpts) dispatches() ([]string, error) {
	out, err := parseList(o.Dispatch, "dispatch", oneOf([]string{coordinator.DispatchRequest, coordinator.DispatchJetStream}))
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, invalid("dispatch", o.Dispatch, "no dispatch given")
	}
	if o.JobID != "" && !proto.ValidJobID(o.JobID) {
		return nil, invalid("job_id", o.JobID, "want 1 to 64 letters, digits, '-' or '_'")
	}
	return slices.Compact(out), nil
}

// parseList parses a comma-separated list, naming key on error.
func parseList[T any](s, key string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, invalid(key, s, fmt.Sprintf("%q: %v", f, err))
		}
		out = append(out, v)
	}
	return out, nil
}

// oneOf parses a list item that must be one of names.
func oneOf(names []string) func(string) (string, error) {
	return func(s string) (string, error) {
		if !slices.Contains(names, s) {
			return "", fmt.Errorf("is not one of %s", strings.Join(names, ", "))
		}
		return s, nil
	}
}

// load merges defaults, the config file, FERRY_* env and the flags of cmd
// (highest wins) into o, with a local viper instance.
func load(cmd *cobra.Command, o any) error {
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
			return fmt.Errorf("%w: config=%s: %v", errUsage, path, err)
		}
		file := viper.New() // the file's own keys, without flags and env
		file.SetConfigFile(path)
		if err := file.ReadInConfig(); err != nil {
			return fmt.Errorf("%w: config=%s: %v", errUsage, path, err)
		}
		known := configKeys(cmd.Root())
		for _, k := range file.AllKeys() {
			if !slices.Contains(known, k) {
				return fmt.Errorf("%w: config file %s: unknown key %q", errUsage, path, k)
			}
		}
	}
	hook := mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc())
	if err := v.Unmarshal(o, viper.DecodeHook(hook)); err != nil {
		// mapstructure lists errors on several lines; a user gets one.
		msg := strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):")
		return fmt.Errorf("%w: %s", coordinator.ErrInvalidConfig, strings.Join(strings.Fields(msg), " "))
	}
	return nil
}

// configKeys lists every config key: the flags of every command, as keys.
func configKeys(root *cobra.Command) []string {
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

func invalid(key string, v any, why string) error {
	return fmt.Errorf("%w: %s=%v: %s", coordinator.ErrInvalidConfig, key, v, why)
}

// configMap is a command's configuration echoed in reports: every set key
// but config and the secrets, durations as text, NATS URLs redacted.
func configMap(o any) map[string]any {
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
			default:
				m[tag] = fv.Interface()
			}
		}
	}
	walk(reflect.Indirect(reflect.ValueOf(o)))
	if u, ok := m["nats_url"].(string); ok {
		m["nats_url"] = natsconn.Redact(u)
	}
	if u, ok := m["llm_url"].(string); ok {
		m["llm_url"] = lab.RedactURL(u)
	}
	return m
}
