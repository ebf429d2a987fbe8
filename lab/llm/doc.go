// Package llm is ferry's I/O-bound workload: calls to an OpenAI-compatible
// chat-completions API, made with bounded concurrency on goroutines.
//
// It holds three pieces: a Mock server that behaves like a slow, rate-limited,
// occasionally failing LLM API (so runs are reproducible and free), a Client
// that retries the way production clients must, and Run, which fans prompts
// out over a Client and measures what the concurrency bought.
//
// It is for showing that I/O-bound work needs concurrency, not cores: 5,000
// calls of 500 ms each finish in about a second on two cores. It is not an
// SDK: it speaks only the non-streaming chat-completions subset, one user
// message per call, no tools, no streaming. It knows nothing of NATS; CPU-heavy
// work belongs in package workload.
package llm
