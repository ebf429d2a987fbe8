package command

import (
	"fmt"
	"text/tabwriter"

	"github.com/ferrylab/ferry/bridge"
	"github.com/ferrylab/ferry/workload"
	"github.com/spf13/cobra"
)

func newCmdWorkloads() *cobra.Command {
	return &cobra.Command{
		Use:   "workloads",
		Short: "List the workloads of this binary and their params",
		Long: `workloads lists every workload this binary can compute (--workload): the
built-in ones, those its main registered (ferry.Main), and exec, the
program of --exec. Under each, its params (--param key=value): kind,
default and bounds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stop, err := (execOpts{}).startExec(bridge.Name, 0)
			if err != nil {
				return err
			}
			defer stop()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			for _, name := range workload.Names() {
				d, _ := workload.Lookup(name)
				fmt.Fprintf(tw, "%s\t%s\n", d.Name, d.Doc)
				for _, p := range d.Params {
					fmt.Fprintf(tw, "  --param %s=\t%s, default %v%s. %s\n", p.Key, p.Kind, p.Default, bounds(p), p.Doc)
				}
			}
			return tw.Flush()
		},
	}
}

func bounds(p workload.Param) string {
	switch p.Kind {
	case workload.Int, workload.Float:
		return fmt.Sprintf(", %v to %v", p.Min, p.Max)
	case workload.String:
		if p.Max > 0 {
			return fmt.Sprintf(", at most %v bytes", p.Max)
		}
	}
	return ""
}
