package command

import (
	"errors"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/ferrylab/ferry/bridge"
	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/internal/list"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/internal/progress"
	"github.com/ferrylab/ferry/lab"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/workload"
	"github.com/spf13/cobra"
)

// Each command reads its own options struct, built from the groups below.
// The mapstructure tag is the key in config files; the env var is FERRY_
// plus the key upper-cased; the flag is the key with dashes. Defaults are
// the packages' own (coordinator.Config.WithDefaults and the like), shown
// in each flag and kept in step with configs/ferry.yaml by a test.

// logOpts are the root's persistent keys, read by every command.
type logOpts struct {
	Config    string `mapstructure:"config" help:"config file (YAML, JSON or TOML); see configs/ferry.yaml"`
	LogLevel  string `mapstructure:"log_level" help:"log level: debug, info, warn, error"`
	LogFormat string `mapstructure:"log_format" help:"log format on stderr: text or json"`
}

// logger builds the structured logger on stderr.
func (o logOpts) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, cli.Invalid("log_level", o.LogLevel, "must be debug, info, warn or error")
	}
	ho := &slog.HandlerOptions{Level: level}
	switch o.LogFormat {
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, ho)), nil
	}
	return nil, cli.Invalid("log_format", o.LogFormat, "must be text or json")
}

// natsOpts are a NATS client's keys.
type natsOpts struct {
	NATSURL       string `mapstructure:"nats_url" redact:"true" help:"NATS server URL(s), comma separated"`
	NATSUser      string `mapstructure:"nats_user" help:"NATS user (password from FERRY_NATS_PASSWORD)"`
	NATSPassword  string `mapstructure:"nats_password" secret:"true" help:"NATS password; prefer the FERRY_NATS_PASSWORD env var"`
	NATSToken     string `mapstructure:"nats_token" secret:"true" help:"NATS token; prefer the FERRY_NATS_TOKEN env var"`
	NATSNKeySeed  string `mapstructure:"nats_nkey_seed" help:"path to an nkey seed file"`
	NATSCredsFile string `mapstructure:"nats_creds" help:"path to a NATS .creds file"`
	NATSTLSCA     string `mapstructure:"nats_tls_ca" help:"CA bundle to verify the NATS server"`
	NATSTLSCert   string `mapstructure:"nats_tls_cert" help:"client certificate for mutual TLS"`
	NATSTLSKey    string `mapstructure:"nats_tls_key" help:"client key for mutual TLS"`
}

// defaultNATS is where a client connects by default.
var defaultNATS = natsOpts{NATSURL: "nats://127.0.0.1:4222"}

func (o natsOpts) auth() natsconn.Auth {
	return natsconn.Auth{
		User: o.NATSUser, Password: o.NATSPassword, Token: o.NATSToken,
		NKeySeed: o.NATSNKeySeed, CredsFile: o.NATSCredsFile,
		TLSCA: o.NATSTLSCA, TLSCert: o.NATSTLSCert, TLSKey: o.NATSTLSKey,
	}
}

// corpusOpts say where documents come from.
type corpusOpts struct {
	Docs        int64  `mapstructure:"docs" help:"documents in the generated corpus (ignored with --input)"`
	DocWords    int    `mapstructure:"doc_words" help:"words per generated document"`
	DocBytes    int    `mapstructure:"doc_bytes" help:"exact bytes per generated document, overriding --doc-words (0 = off)"`
	Seed        uint64 `mapstructure:"seed" help:"corpus seed: the generated corpus is a function of it"`
	Input       string `mapstructure:"input" help:"read documents from a file (one per line), a .jsonl file (text field) or a folder of .txt/.md files"`
	MaxDocs     int64  `mapstructure:"max_docs" help:"refuse inputs with more documents than this (0 = unlimited)"`
	MaxDocBytes int    `mapstructure:"max_doc_bytes" help:"refuse documents larger than this many bytes"`
}

func defaultCorpus() corpusOpts {
	return corpusOpts{Docs: 100000, DocWords: 100, Seed: 1, MaxDocBytes: proto.DefaultMaxDocBytes}
}

func (o corpusOpts) input() lab.Input {
	return lab.Input{
		Path:   o.Input,
		Limits: corpus.Limits{MaxDocBytes: o.MaxDocBytes, MaxDocs: o.MaxDocs},
		Gen:    corpus.GenConfig{Seed: o.Seed, Docs: o.Docs, Words: o.DocWords, DocBytes: o.DocBytes},
	}
}

// jobOpts are a job's keys (run, coordinator, sweep, pipeline).
type jobOpts struct {
	corpusOpts     `mapstructure:",squash"`
	Modes          string        `mapstructure:"modes" help:"modes to run, in order: serial, goroutines, gil, codec, processes"`
	Workers        int           `mapstructure:"workers" help:"workers: goroutines in-process, worker processes for processes mode (0 = usable cores)"`
	Workload       string        `mapstructure:"workload" help:"workload: embed, chunk, infer, spin, noop"`
	BatchSize      int           `mapstructure:"batch_size" help:"documents per batch"`
	Out            string        `mapstructure:"out" help:"write results in input order to FILE (.npy float32 matrix or .jsonl)"`
	Format         string        `mapstructure:"format" short:"f" help:"report format: text, json, csv"`
	Codec          string        `mapstructure:"codec" help:"wire codec: packed, msgpack"`
	Compress       string        `mapstructure:"compress" help:"compress batches and results on the wire: \"\" (off) or s2"`
	InFlight       int           `mapstructure:"inflight" help:"batches in flight per worker process (pipelining)"`
	MaxAttempts    int           `mapstructure:"max_attempts" help:"sends of a batch before it is split to isolate bad documents"`
	BatchTimeout   time.Duration `mapstructure:"batch_timeout" help:"reply deadline per batch (0 = derived from measured compute time)"`
	WorkerWait     time.Duration `mapstructure:"worker_wait" help:"how long to wait for workers to attach"`
	Quiet          bool          `mapstructure:"quiet" short:"q" help:"no progress output"`
	TimeoutFloor   time.Duration `mapstructure:"timeout_floor" help:"lower bound of the derived reply deadline"`
	TimeoutCeil    time.Duration `mapstructure:"timeout_ceil" help:"upper bound of the derived reply deadline"`
	StopGrace      time.Duration `mapstructure:"stop_grace" help:"on SIGTERM/Ctrl-C, how long batches in flight may finish before exit (0 = don't wait)"`
	Dispatch       string        `mapstructure:"dispatch" help:"how processes mode sends batches: request (request/reply), jetstream (durable streams), or both, comma separated, to compare"`
	DataPlane      string        `mapstructure:"data_plane" help:"what carries processes mode's batches (request dispatch): nats, shm (shared memory with the local fleet's workers; others fall back to NATS), or nats,shm to compare"`
	JobID          string        `mapstructure:"job_id" help:"job ID for dispatch=jetstream; a coordinator restarted with the same ID resumes (\"\" = a new random one)"`
	Batch          string        `mapstructure:"batch" help:"batch sizing: fixed (batch_size) or auto (adapt during the run, starting at batch_size)"`
	OverheadTarget float64       `mapstructure:"overhead_target" help:"per-batch overhead share that --batch auto and ferry recommend aim to stay under"`
	// workload parameters
	Dim          int           `mapstructure:"dim" help:"embedding width"`
	ChunkTokens  int           `mapstructure:"chunk_tokens" help:"chunk window in tokens"`
	ChunkOverlap int           `mapstructure:"chunk_overlap" help:"tokens shared by neighbouring chunks (0 = min(32, chunk_tokens/8))"`
	SpinCost     time.Duration `mapstructure:"spin_cost" help:"spin workload CPU per document"`
	OutBytes     int           `mapstructure:"out_bytes" help:"spin and noop workloads: output bytes per document"`
	ModelSeed    uint64        `mapstructure:"model_seed" help:"infer workload weights seed"`
	Param        []string      `mapstructure:"param" help:"a parameter of the workload, key=value; repeat for more (ferry workloads lists them)"`
	execOpts     `mapstructure:",squash"`
}

// execOpts run an exec workload's program (run, coordinator, sweep,
// pipeline, worker).
type execOpts struct {
	Exec        string        `mapstructure:"exec" help:"with --workload exec: the program computing each batch, a command line run with sh -c, speaking exec frames on stdin/stdout (docs/protocol.md)"`
	ExecTimeout time.Duration `mapstructure:"exec_timeout" help:"longest one batch may take in the exec program before it counts as hung and is killed"`
}

func defaultExec() execOpts { return execOpts{ExecTimeout: bridge.DefaultTimeout} }

// startExec registers this process's exec workload, running Exec, when the
// job or this worker may compute one (a coordinator whose workers run the
// program needs it to validate its job), with warm programs started now.
// stop ends the programs: call it when the command's work is done.
func (o execOpts) startExec(workloadName string, warm int) (stop func(), err error) {
	if o.Exec == "" && workloadName != bridge.Name {
		return func() {}, nil
	}
	if o.ExecTimeout < 0 {
		return nil, cli.Invalid("exec_timeout", o.ExecTimeout, "must be positive")
	}
	pool := bridge.NewPool(bridge.Config{Command: o.Exec, Timeout: o.ExecTimeout})
	if err := workload.Register(pool.Def()); errors.Is(err, workload.ErrDuplicate) {
		return nil, cli.Invalid("workload", bridge.Name, "a workload of this binary is already named exec")
	} else if err != nil {
		return nil, err
	}
	if err := pool.Warm(warm); err != nil {
		pool.Close()
		return nil, cli.Invalid("exec", o.Exec, err.Error())
	}
	return func() { pool.Close() }, nil
}

// inProcess is how many in-process lanes modes run, for warm programs.
func (o jobOpts) inProcess() int {
	for _, m := range list.Words(o.Modes) {
		if m != coordinator.ModeProcesses && o.Workers == 0 {
			return runtime.GOMAXPROCS(0)
		} else if m != coordinator.ModeProcesses {
			return o.Workers
		}
	}
	return 0
}

// fleet is the local fleet's workers' share of the exec options.
func (o execOpts) fleet(f fleet.Config) fleet.Config {
	f.Exec, f.ExecTimeout = o.Exec, o.ExecTimeout
	return f
}

// defaultJob is the job keys' defaults: the coordinator's and the
// workloads'; modes is the command's own.
func defaultJob(modes string) jobOpts {
	c, p := coordinator.Config{}.WithDefaults(), workload.Params{}.WithDefaults()
	return jobOpts{
		corpusOpts: defaultCorpus(), Modes: modes, Workload: c.Workload, BatchSize: c.BatchSize, Format: "text",
		Codec: c.Codec, InFlight: c.InFlight, MaxAttempts: c.MaxAttempts, WorkerWait: c.WorkerWait,
		TimeoutFloor: c.TimeoutFloor, TimeoutCeil: c.TimeoutCeil, StopGrace: c.StopGrace,
		Dispatch: coordinator.DispatchRequest, DataPlane: coordinator.PlaneNATS, Batch: "fixed", OverheadTarget: c.OverheadTarget,
		Dim: p.Dim, ChunkTokens: p.ChunkTokens, SpinCost: time.Duration(p.SpinCostNs), OutBytes: p.OutBytes, ModelSeed: p.Seed,
		Param: []string{}, execOpts: defaultExec(),
	}
}

// fleetOpts are the keys of a local fleet (run, sweep, pipeline).
type fleetOpts struct {
	MaxPayload int `mapstructure:"max_payload" help:"embedded broker's max message size in bytes"`
}

func defaultFleet() fleetOpts { return fleetOpts{MaxPayload: broker.DefaultMaxPayload} }

// job validates the job keys and builds the coordinator's Config.
func (o jobOpts) job() (coordinator.Config, error) {
	switch {
	case o.Batch != "fixed" && o.Batch != "auto" && o.Batch != "":
		return coordinator.Config{}, cli.Invalid("batch", o.Batch, "must be fixed or auto")
	case o.StopGrace < 0:
		return coordinator.Config{}, cli.Invalid("stop_grace", o.StopGrace, "must be positive (0 = don't wait)")
	}
	grace := o.StopGrace
	if grace == 0 {
		grace = -1 // the coordinator's "none"; its zero means the default
	}
	workers := o.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	args, err := workload.ParseArgs(o.Workload, o.Param)
	if err != nil {
		return coordinator.Config{}, err // names the param and what it wants
	}
	cfg := coordinator.Config{
		Workload: o.Workload,
		Params: workload.Params{
			Dim: o.Dim, ChunkTokens: o.ChunkTokens, ChunkOverlap: o.ChunkOverlap,
			SpinCostNs: int64(o.SpinCost), OutBytes: o.OutBytes, Seed: o.ModelSeed, Args: args,
		},
		BatchSize: o.BatchSize, Workers: workers, Codec: o.Codec, Compress: o.Compress, InFlight: o.InFlight,
		MaxAttempts: o.MaxAttempts, BatchTimeout: o.BatchTimeout, WorkerWait: o.WorkerWait,
		Limits:    proto.Limits{MaxDocBytes: o.MaxDocBytes},
		AutoBatch: o.Batch == "auto", OverheadTarget: o.OverheadTarget,
		TimeoutFloor: o.TimeoutFloor, TimeoutCeil: o.TimeoutCeil, StopGrace: grace,
	}
	return cfg, cfg.Validate()
}

// labWithExec is lab, after starting the exec workload's programs when the
// job has one; stop ends them (a no-op otherwise).
func (o jobOpts) labWithExec(cmd *cobra.Command, all any, log *slog.Logger) (cfg lab.Config, stop func(), err error) {
	if stop, err = o.startExec(o.Workload, o.inProcess()); err != nil {
		return cfg, nil, err
	}
	if cfg, err = o.lab(cmd, all, log); err != nil {
		stop()
		return cfg, nil, err
	}
	return cfg, stop, nil
}

// lab builds the lab's Config for the job keys (lab.Run validates it);
// the caller adds where processes mode runs.
func (o jobOpts) lab(cmd *cobra.Command, all any, log *slog.Logger) (lab.Config, error) {
	if o.BatchSize == 0 { // a job's batch size is set (the sweep's points set their own)
		return lab.Config{}, cli.Invalid("batch_size", o.BatchSize, "must be at least 1")
	}
	job, err := o.job()
	cfg := lab.Config{
		Job: job, Modes: list.Words(o.Modes), Dispatch: list.Words(o.Dispatch), DataPlane: list.Words(o.DataPlane), JobID: o.JobID, Input: o.input(), Out: o.Out,
		Report: cli.Echo(all), Format: o.Format, Stdout: cmd.OutOrStdout(), Logger: log,
	}
	if !o.Quiet {
		cfg.Progress = progress.Docs
	}
	return cfg, err
}
