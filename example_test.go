package ferry_test

import (
	"strings"

	"github.com/ferrylab/ferry"
	"github.com/ferrylab/ferry/workload"
)

// A binary of one's own: its main registers the workload and runs the
// ferry command line (`./mybinary run --workload upper`). Worker processes
// are this same executable, so they compute it too.
func Example() {
	upper := workload.Def{Name: "upper", New: func(workload.Params) (workload.Workload, error) {
		return workload.Func("upper", func(docs []string, out *workload.Output) error {
			for _, d := range docs {
				if err := out.AppendDoc([]byte(strings.ToUpper(d))); err != nil {
					return err
				}
			}
			return nil
		}), nil
	}}
	main := func() { ferry.Main(upper) }
	_ = main // in package main: func main() { ferry.Main(upper) }
}
