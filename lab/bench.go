package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/floor"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/report"
	"github.com/ferrylab/ferry/shm"
)

// BenchConfig configures RunBenchTransport.
type BenchConfig struct {
	Sizes      []int        // payload sizes in bytes; nil = floor.DefaultSizes()
	RoundTrips int          // timed round trips per size, each side; at least 1
	Codec      string       // ferry's side of the wire: proto.CodecNames; "" = packed
	Compress   string       // "" (off) or s2
	Limits     proto.Limits // what ferry's decoders accept
	Python     string       // "auto", "off" or an interpreter path
	MaxPayload int          // the embedded broker's max_payload; 0 = its default
	Report     map[string]any
	Format     string
	Stdout     io.Writer
	Logger     *slog.Logger
}

// RunBenchTransport starts a local fleet of one worker and the echo, times
// raw NATS echoes against ferry's batch round trips per size, then Python's
// ProcessPoolExecutor on the same payloads when an interpreter is found,
// and writes the report.
func RunBenchTransport(ctx context.Context, cfg BenchConfig) error {
	log := orDiscard(cfg.Logger)
	if cfg.Sizes == nil {
		cfg.Sizes = floor.DefaultSizes()
	}
	// The worker has shared memory too (Linux): the shm columns time the
	// same batches over it.
	fc := fleet.Config{Workers: 1, Echo: true, MaxPayload: cfg.MaxPayload, Name: "ferry-bench", Logger: log, Shm: shm.Supported}
	if err := fc.Validate(); err != nil {
		return err
	}
	limit := fc.WithDefaults().MaxPayload
	for _, s := range cfg.Sizes {
		if s > limit-4096 {
			return fmt.Errorf("%w: sizes=%d: %d bytes does not fit max_payload %d with room for framing", coordinator.ErrInvalidConfig, s, s, limit)
		}
	}
	if cfg.RoundTrips < 1 {
		return fmt.Errorf("%w: roundtrips=%d: must be at least 1", coordinator.ErrInvalidConfig, cfg.RoundTrips)
	}
	codec, err := wireCodec(coordinator.Config{Codec: cfg.Codec, Compress: cfg.Compress, Limits: cfg.Limits}.WithDefaults(), limit)
	if err != nil {
		return fmt.Errorf("%w: codec=%s compress=%s: %v", coordinator.ErrInvalidConfig, cfg.Codec, cfg.Compress, err)
	}
	python, err := floor.FindPython(cfg.Python)
	switch {
	case errors.Is(err, floor.ErrNoPython):
		log.Info("no python3 on PATH: skipping the Python baseline")
	case err != nil:
		return fmt.Errorf("%w: python=%s: %v", coordinator.ErrInvalidConfig, cfg.Python, err)
	}
	f, err := fleet.Start(ctx, fc)
	if err != nil {
		return err
	}
	defer f.Close()
	points, err := floor.MeasureWorker(ctx, f.Conn(), codec, floor.Config{Sizes: cfg.Sizes, RoundTrips: cfg.RoundTrips, EchoSubject: f.Echo().Subject, Shm: f.Shm()})
	if err != nil {
		return err
	}
	rcfg := map[string]any{}
	maps.Copy(rcfg, cfg.Report)
	if python != "" {
		version, samples, err := floor.MeasurePython(ctx, python, cfg.Sizes, cfg.RoundTrips)
		if err != nil {
			return err
		}
		for i := range points {
			points[i].Python = samples[i]
		}
		rcfg["python_version"] = version
	}
	return report.WriteTransport(orStdout(cfg.Stdout), report.NewTransport(machine.Probe(), rcfg, points), cfg.Format)
}
