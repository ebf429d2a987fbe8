package workload

import (
	"errors"
	"fmt"
)

// ErrInvalidParams is wrapped by every Params validation error; the message
// names the field by its config key and the bad value.
var ErrInvalidParams = errors.New("workload: invalid params")

// Defaults and limits for Params. The limits keep a typo in a config from
// asking a worker for gigabytes: infer holds 8*Dim*Dim float32 weights.
const (
	DefaultDim          = 384
	DefaultChunkTokens  = 256
	DefaultChunkOverlap = 32
	DefaultSpinCostNs   = 200_000
	DefaultOutBytes     = 16
	DefaultSeed         = 1

	MaxDim         = 4096
	MaxInferDim    = 1024
	MaxChunkTokens = 1 << 20
	MaxSpinCostNs  = 60_000_000_000 // one minute per document
	MaxOutBytes    = 1 << 20
)

// Validate reports the first field that is out of range. Zero means default,
// so only negative and oversized values fail.
func (p Params) Validate() error {
	checks := []struct {
		key      string
		val, max int64
	}{
		{"dim", int64(p.Dim), MaxDim},
		{"chunk_tokens", int64(p.ChunkTokens), MaxChunkTokens},
		{"chunk_overlap", int64(p.ChunkOverlap), MaxChunkTokens},
		{"spin_cost_ns", p.SpinCostNs, MaxSpinCostNs},
		{"out_bytes", int64(p.OutBytes), MaxOutBytes},
	}
	for _, c := range checks {
		if c.val < 0 {
			return fmt.Errorf("%w: %s %d must be >= 0", ErrInvalidParams, c.key, c.val)
		}
		if c.val > c.max {
			return fmt.Errorf("%w: %s %d must be <= %d", ErrInvalidParams, c.key, c.val, c.max)
		}
	}
	d := p.WithDefaults()
	if d.ChunkOverlap >= d.ChunkTokens {
		return fmt.Errorf("%w: chunk_overlap %d must be < chunk_tokens %d",
			ErrInvalidParams, d.ChunkOverlap, d.ChunkTokens)
	}
	return nil
}

// WithDefaults replaces every zero field by its default.
func (p Params) WithDefaults() Params {
	if p.Dim == 0 {
		p.Dim = DefaultDim
	}
	if p.ChunkTokens == 0 {
		p.ChunkTokens = DefaultChunkTokens
	}
	if p.ChunkOverlap == 0 {
		// Scale down for small windows so chunk_tokens 16 alone is valid.
		p.ChunkOverlap = min(DefaultChunkOverlap, p.ChunkTokens/8)
	}
	if p.SpinCostNs == 0 {
		p.SpinCostNs = DefaultSpinCostNs
	}
	if p.OutBytes == 0 {
		p.OutBytes = DefaultOutBytes
	}
	if p.Seed == 0 {
		p.Seed = DefaultSeed
	}
	return p
}
