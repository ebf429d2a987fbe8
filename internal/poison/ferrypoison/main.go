// Command ferrypoison is ferry with the test-only poison workload: the
// binary the fault tests run as worker processes. It is also the shortest
// example of a ferry binary of one's own.
package main

import (
	"github.com/ferrylab/ferry"
	"github.com/ferrylab/ferry/internal/poison"
)

func main() { ferry.Main(poison.Workload) }
