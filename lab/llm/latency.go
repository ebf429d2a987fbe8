package llm

import (
	"math"
	"math/rand/v2"
	"time"
)

// z99 is the standard normal quantile at 0.99: a lognormal's p99 sits z99
// sigmas above its median in log space.
const z99 = 2.326

// latencyModel draws reply delays: fixed when sigma is 0, else lognormal with
// median exp(mu). Lognormal because real LLM latencies are right-skewed: most
// calls near the median, a long tail that dominates a serial loop's wall time.
type latencyModel struct {
	fixed time.Duration
	mu    float64 // ln(p50 in seconds)
	sigma float64 // ln(p99/p50) / z99
}

// newLatencyModel fits the model to p50 and p99; p99 <= p50 means fixed p50.
func newLatencyModel(p50, p99 time.Duration) latencyModel {
	if p99 <= p50 || p50 <= 0 {
		return latencyModel{fixed: max(p50, 0)}
	}
	return latencyModel{
		mu:    math.Log(p50.Seconds()),
		sigma: math.Log(float64(p99)/float64(p50)) / z99,
	}
}

// draw returns one delay. rng is per request, so draws never contend on a lock.
func (l latencyModel) draw(rng *rand.Rand) time.Duration {
	if l.sigma == 0 {
		return l.fixed
	}
	s := math.Exp(l.mu + l.sigma*rng.NormFloat64())
	return time.Duration(s * float64(time.Second))
}
