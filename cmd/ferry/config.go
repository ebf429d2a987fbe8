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

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/report"
	"github.com/ferrylab/ferry/workload"
	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Options is every configuration key of every command, in one place. The
// mapstructure tag is the key in config files; the env var is FERRY_ plus
// the key upper-cased; the flag is the key with dashes.
type Options struct {
	Config    string `mapstructure:"config"`
	LogLevel  string `mapstructure:"log_level"`
	LogFormat string `mapstructure:"log_format"`

	// NATS client
	NATSURL       string `mapstructure:"nats_url"`
	NATSUser      string `mapstructure:"nats_user"`
	NATSPassword  string `mapstructure:"nats_password" secret:"true"`
	NATSToken     string `mapstructure:"nats_token" secret:"true"`
	NATSNKeySeed  string `mapstructure:"nats_nkey_seed"`
	NATSCredsFile string `mapstructure:"nats_creds"`
	NATSTLSCA     string `mapstructure:"nats_tls_ca"`
	NATSTLSCert   string `mapstructure:"nats_tls_cert"`
	NATSTLSKey    string `mapstructure:"nats_tls_key"`

	// job
	Modes          string        `mapstructure:"modes"`
	Workers        int           `mapstructure:"workers"`
	Workload       string        `mapstructure:"workload"`
	BatchSize      int           `mapstructure:"batch_size"`
	Docs           int64         `mapstructure:"docs"`
	DocWords       int           `mapstructure:"doc_words"`
	DocBytes       int           `mapstructure:"doc_bytes"`
	Seed           uint64        `mapstructure:"seed"`
	Input          string        `mapstructure:"input"`
	MaxDocs        int64         `mapstructure:"max_docs"`
	MaxDocBytes    int           `mapstructure:"max_doc_bytes"`
	Out            string        `mapstructure:"out"`
	Format         string        `mapstructure:"format"`
	Codec          string        `mapstructure:"codec"`
	Compress       string        `mapstructure:"compress"`
	InFlight       int           `mapstructure:"inflight"`
	MaxAttempts    int           `mapstructure:"max_attempts"`
	BatchTimeout   time.Duration `mapstructure:"batch_timeout"`
	WorkerWait     time.Duration `mapstructure:"worker_wait"`
	ExpectWorkers  int           `mapstructure:"expect_workers"`
	Quiet          bool          `mapstructure:"quiet"`
	TimeoutFloor   time.Duration `mapstructure:"timeout_floor"`
	TimeoutCeil    time.Duration `mapstructure:"timeout_ceil"`
	StopGrace      time.Duration `mapstructure:"stop_grace"`
	Dispatch       string        `mapstructure:"dispatch"`
	JobID          string        `mapstructure:"job_id"`
	Batch          string        `mapstructure:"batch"`
	OverheadTarget float64       `mapstructure:"overhead_target"`

	// sweep and recommend
	BatchSizes   string        `mapstructure:"batch_sizes"`
	WorkerCounts string        `mapstructure:"worker_counts"`
	Codecs       string        `mapstructure:"codecs"`
	SpinCosts    string        `mapstructure:"spin_costs"`
	OutSizes     string        `mapstructure:"out_sizes"`
	DocSizes     string        `mapstructure:"doc_sizes"`
	Repeats      int           `mapstructure:"repeats"`
	PointTime    time.Duration `mapstructure:"point_time"`
	Records      string        `mapstructure:"records"`
	Analyze      string        `mapstructure:"analyze"`
	Report       string        `mapstructure:"report"`

	// workload parameters
	Dim          int           `mapstructure:"dim"`
	ChunkTokens  int           `mapstructure:"chunk_tokens"`
	ChunkOverlap int           `mapstructure:"chunk_overlap"`
	SpinCost     time.Duration `mapstructure:"spin_cost"`
	OutBytes     int           `mapstructure:"out_bytes"`
	ModelSeed    uint64        `mapstructure:"model_seed"`

	// worker
	Procs int `mapstructure:"procs"`

	// bench transport
	Sizes      string `mapstructure:"sizes"`
	RoundTrips int    `mapstructure:"roundtrips"`
	Python     string `mapstructure:"python"`

	// metrics (worker, coordinator)
	MetricsAddr string `mapstructure:"metrics_addr"`

	// broker
	Listen     string `mapstructure:"listen"`
	HTTPPort   int    `mapstructure:"http_port"`
	JetStream  bool   `mapstructure:"jetstream"`
	StoreDir   string `mapstructure:"store_dir"`
	MaxPayload int    `mapstructure:"max_payload"`

	// broker auth and TLS (docs/auth.md); secret keys never reach a report
	AuthFile            string `mapstructure:"auth_file"`
	WorkerUser          string `mapstructure:"worker_user"`
	WorkerPassword      string `mapstructure:"worker_password" secret:"true"`
	CoordinatorUser     string `mapstructure:"coordinator_user"`
	CoordinatorPassword string `mapstructure:"coordinator_password" secret:"true"`
	AllowAnonymous      bool   `mapstructure:"allow_anonymous"`
	TLSCert             string `mapstructure:"tls_cert"`
	TLSKey              string `mapstructure:"tls_key"`
	TLSClientCA         string `mapstructure:"tls_client_ca"`

	// broker cluster
	ServerName       string `mapstructure:"server_name"`
	ClusterListen    string `mapstructure:"cluster_listen"`
	ClusterName      string `mapstructure:"cluster_name"`
	Routes           string `mapstructure:"routes"`
	ClusterAdvertise string `mapstructure:"cluster_advertise"`
	ClientAdvertise  string `mapstructure:"client_advertise"`

	// LLM mock server (mockllm; the in-process mock of llm and pipeline)
	LLMListen    string        `mapstructure:"llm_listen"`
	LatencyP50   time.Duration `mapstructure:"latency_p50"`
	LatencyP99   time.Duration `mapstructure:"latency_p99"`
	RateLimit    float64       `mapstructure:"rate_limit"`
	Burst        int           `mapstructure:"burst"`
	ErrorRate    float64       `mapstructure:"error_rate"`
	ReplyRatio   float64       `mapstructure:"reply_ratio"`
	MaxBodyBytes int64         `mapstructure:"max_body_bytes"`
	// LLM client (llm, pipeline); the API key comes from FERRY_LLM_API_KEY only
	LLMURL            string        `mapstructure:"llm_url"`
	LLMModel          string        `mapstructure:"llm_model"`
	Concurrency       int           `mapstructure:"concurrency"`
	LLMTimeout        time.Duration `mapstructure:"llm_timeout"`
	LLMMaxAttempts    int           `mapstructure:"llm_max_attempts"`
	LLMMaxPromptBytes int           `mapstructure:"llm_max_prompt_bytes"`
	LLMWarmup         bool          `mapstructure:"llm_warmup"`
}

// flag registration, grouped by what a command needs. Defaults live here
// and in configs/ferry.yaml (a test keeps the two in step).

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

func addMetricsFlag(fs *pflag.FlagSet) {
	fs.String("metrics-addr", "", "serve Prometheus /metrics and /healthz on this host:port (\"\" = off)")
}

func addJobFlags(fs *pflag.FlagSet) {
	fs.Int("workers", 0, "workers: goroutines in-process, worker processes for processes mode (0 = usable cores)")
	fs.String("workload", "embed", "workload: "+strings.Join(workload.Names(), ", "))
	fs.Int("batch-size", 100, "documents per batch")
	addCorpusFlags(fs)
	fs.String("out", "", "write results in input order to FILE (.npy float32 matrix or .jsonl)")
	fs.StringP("format", "f", "text", "report format: "+strings.Join(report.Formats, ", "))
	fs.String("codec", proto.CodecPacked, "wire codec: "+strings.Join(proto.CodecNames(), ", "))
	fs.String("compress", "", `compress batches and results on the wire: "" (off) or s2`)
	fs.Int("inflight", 2, "batches in flight per worker process (pipelining)")
	fs.Int("max-attempts", 3, "sends of a batch before it is split to isolate bad documents")
	fs.Duration("batch-timeout", 0, "reply deadline per batch (0 = derived from measured compute time)")
	fs.Duration("worker-wait", 30*time.Second, "how long to wait for workers to attach")
	fs.Duration("timeout-floor", time.Second, "lower bound of the derived reply deadline")
	fs.Duration("timeout-ceil", 30*time.Second, "upper bound of the derived reply deadline")
	addDispatchFlag(fs)
	fs.String("job-id", "", "job ID for dispatch=jetstream; a coordinator restarted with the same ID resumes (\"\" = a new random one)")
	fs.Duration("stop-grace", 2*time.Second, "on SIGTERM/Ctrl-C, how long batches in flight may finish before exit (0 = don't wait)")
	fs.BoolP("quiet", "q", false, "no progress output")
	fs.String("batch", "fixed", "batch sizing: fixed (batch_size) or auto (adapt during the run, starting at batch_size)")
	fs.Float64("overhead-target", 0.05, "per-batch overhead share that --batch auto and ferry recommend aim to stay under")
	fs.Int("dim", 0, "embedding width (0 = 384)")
	fs.Int("chunk-tokens", 0, "chunk window in tokens (0 = 256)")
	fs.Int("chunk-overlap", 0, "tokens shared by neighbouring chunks (0 = 32)")
	fs.Duration("spin-cost", 0, "spin workload CPU per document (0 = 200us)")
	fs.Int("out-bytes", 0, "spin and noop workloads: output bytes per document (0 = 16)")
	fs.Uint64("model-seed", 0, "infer workload weights seed (0 = 1)")
}

// addDispatchFlag registers --dispatch (jobs, and workers: a worker given
// jetstream also pulls batches from the stream).
func addDispatchFlag(fs *pflag.FlagSet) {
	fs.String("dispatch", coordinator.DispatchRequest, "how processes mode sends batches: request (request/reply), jetstream (durable streams), or both, comma separated, to compare")
}

// dispatches parses the dispatch key.
func (o *Options) dispatches() ([]string, error) {
	var out []string
	for _, d := range strings.Split(o.Dispatch, ",") {
		d = strings.TrimSpace(d)
		switch d {
		case "":
			continue
		case coordinator.DispatchRequest, coordinator.DispatchJetStream:
			if !slices.Contains(out, d) {
				out = append(out, d)
			}
		default:
			return nil, invalid("dispatch", o.Dispatch, fmt.Sprintf("%q is not request or jetstream", d))
		}
	}
	if len(out) == 0 {
		return nil, invalid("dispatch", o.Dispatch, "no dispatch given")
	}
	if o.JobID != "" && !proto.ValidJobID(o.JobID) {
		return nil, invalid("job_id", o.JobID, "want 1 to 64 letters, digits, '-' or '_'")
	}
	return out, nil
}

// addCorpusFlags registers the keys openSource reads.
func addCorpusFlags(fs *pflag.FlagSet) {
	fs.Int64("docs", 100000, "documents in the generated corpus (ignored with --input)")
	fs.Int("doc-words", 100, "words per generated document")
	fs.Int("doc-bytes", 0, "exact bytes per generated document, overriding --doc-words (0 = off)")
	fs.Uint64("seed", 1, "corpus seed: the generated corpus is a function of it")
	fs.String("input", "", "read documents from a file (one per line), a .jsonl file (text field) or a folder of .txt/.md files")
	fs.Int64("max-docs", 0, "refuse inputs with more documents than this (0 = unlimited)")
	fs.Int("max-doc-bytes", 1<<20, "refuse documents larger than this many bytes")
}

// loadOptions merges defaults, the config file, FERRY_* env and the flags
// of cmd (highest wins) into Options, with a local viper instance.
func loadOptions(cmd *cobra.Command) (*Options, error) {
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
		return nil, bindErr
	}
	if path := v.GetString("config"); path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("%w: config=%s: %v", errUsage, path, err)
		}
		file := viper.New() // the file's own keys, without flags and env
		file.SetConfigFile(path)
		if err := file.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("%w: config=%s: %v", errUsage, path, err)
		}
		known := optionKeys()
		for _, k := range file.AllKeys() {
			if !slices.Contains(known, k) {
				return nil, fmt.Errorf("%w: config file %s: unknown key %q", errUsage, path, k)
			}
		}
	}
	var o Options
	hook := mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc())
	if err := v.Unmarshal(&o, viper.DecodeHook(hook)); err != nil {
		// mapstructure lists errors on several lines; a user gets one.
		msg := strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):")
		return nil, fmt.Errorf("%w: %s", coordinator.ErrInvalidConfig, strings.Join(strings.Fields(msg), " "))
	}
	return &o, nil
}

// optionKeys lists every config key, from the Options tags.
func optionKeys() []string {
	t := reflect.TypeFor[Options]()
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		keys = append(keys, t.Field(i).Tag.Get("mapstructure"))
	}
	return keys
}

func invalid(key string, v any, why string) error {
	return fmt.Errorf("%w: %s=%v: %s", coordinator.ErrInvalidConfig, key, v, why)
}

// job validates the job keys and builds the coordinator's Config.
func (o *Options) job() (coordinator.Config, error) {
	switch {
	case o.Workers < 0:
		return coordinator.Config{}, invalid("workers", o.Workers, "must be positive (0 = usable cores)")
	case o.BatchSize <= 0:
		return coordinator.Config{}, invalid("batch_size", o.BatchSize, "must be at least 1")
	case o.Docs < 0:
		return coordinator.Config{}, invalid("docs", o.Docs, "must be positive")
	case o.DocWords <= 0:
		return coordinator.Config{}, invalid("doc_words", o.DocWords, "must be at least 1")
	case o.DocBytes < 0:
		return coordinator.Config{}, invalid("doc_bytes", o.DocBytes, "must be positive")
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
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// wireCodec is the codec and compression keys as one codec; maxBytes
// bounds what a compressed message may decompress to.
func (o *Options) wireCodec(maxBytes int) (proto.Codec, error) {
	if !slices.Contains(proto.CodecNames(), o.Codec) {
		return nil, invalid("codec", o.Codec, "must be one of "+strings.Join(proto.CodecNames(), ", "))
	}
	if !slices.Contains(proto.CompressNames(), o.Compress) {
		return nil, invalid("compress", o.Compress, `must be "" (off) or s2`)
	}
	c, err := proto.NewCodec(o.Codec, proto.Limits{MaxDocBytes: o.MaxDocBytes})
	if err != nil {
		return nil, err
	}
	return proto.NewCompressed(c, o.Compress, maxBytes)
}

// modes parses the modes key.
func (o *Options) modes() ([]string, error) {
	var out []string
	for _, m := range strings.Split(o.Modes, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if !slices.Contains(coordinator.Modes(), m) {
			return nil, invalid("modes", o.Modes, fmt.Sprintf("%q is not one of %s", m, strings.Join(coordinator.Modes(), ", ")))
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, invalid("modes", o.Modes, "no mode given")
	}
	return out, nil
}

func (o *Options) auth() natsconn.Auth {
	return natsconn.Auth{
		User: o.NATSUser, Password: o.NATSPassword, Token: o.NATSToken,
		NKeySeed: o.NATSNKeySeed, CredsFile: o.NATSCredsFile,
		TLSCA: o.NATSTLSCA, TLSCert: o.NATSTLSCert, TLSKey: o.NATSTLSKey,
	}
}

// logger builds the structured logger on stderr.
func (o *Options) logger() (*slog.Logger, error) {
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

// configMap is the job configuration echoed in reports.
func (o *Options) configMap() map[string]any {
	m := map[string]any{}
	_ = mapstructure.Decode(o, &m)
	delete(m, "config")
	t := reflect.TypeFor[Options]()
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("secret") == "true" {
			delete(m, t.Field(i).Tag.Get("mapstructure"))
		}
	}
	for k, val := range m { // drop unset keys so reports stay short
		if reflect.ValueOf(val).IsZero() {
			delete(m, k)
		} else if d, ok := val.(time.Duration); ok {
			m[k] = d.String()
		}
	}
	if u, ok := m["nats_url"].(string); ok {
		m["nats_url"] = natsconn.Redact(u)
	}
	return m
}
