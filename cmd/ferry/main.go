// Command ferry runs CPU-heavy batch work on goroutines or on worker
// processes over NATS and measures what the process boundary costs.
// One binary; the role is a subcommand (run, broker, worker, coordinator).
// A binary of your own with your workloads is the same three lines
// (see ferry.Main).
package main

import "github.com/ferrylab/ferry"

func main() { ferry.Main() }
