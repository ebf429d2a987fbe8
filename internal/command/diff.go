package command

import (
	"github.com/ferrylab/ferry/report"
	"github.com/spf13/cobra"
)

func newCmdDiff() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Compare two sweeps or runs metric by metric, with their spread (like benchstat)",
		Long: `diff reads two files, each a sweep records file (.jsonl or .csv), a sweep
JSON (ferry sweep --format json) or a run report JSON (ferry run --format
json), and prints for every point both share, per metric, the median and
half its range in each file and the change of B against A. A change is
shown as "~" when the two ranges overlap: the difference is within the
spread. Run reports hold one sample per mode, so their changes carry no
verdict.`,
		Example: `  ferry sweep --records before.jsonl && ferry sweep --records after.jsonl
  ferry diff before.jsonl after.jsonl`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := report.LoadSamples(args[0])
			if err != nil {
				return err
			}
			b, err := report.LoadSamples(args[1])
			if err != nil {
				return err
			}
			return report.WriteDiff(cmd.OutOrStdout(), a, b, report.Diff(a, b))
		},
	}
	return cmd
}
