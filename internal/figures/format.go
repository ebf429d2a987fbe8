package figures

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// decode reads each run's Output into a T (unknown fields ignored).
func decode[T any](rs []Run) ([]T, error) {
	out := make([]T, 0, len(rs))
	for _, r := range rs {
		var v T
		if err := json.Unmarshal(r.Output, &v); err != nil {
			return nil, fmt.Errorf("%s round %d: %w", r.Key, r.Repeat, err)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no runs")
	}
	return out, nil
}

// stat is the median and range of one figure over the rounds.
type stat struct{ med, lo, hi float64 }

func statOf(xs []float64) stat {
	if len(xs) == 0 {
		return stat{math.NaN(), math.NaN(), math.NaN()}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{m, s[0], s[len(s)-1]}
}

// of maps f over xs.
func of[T any](xs []T, f func(T) float64) stat {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return statOf(v)
}

// fmtStat is the median in format f, with " [lo-hi]" when the rounds differ.
func (s stat) format(f func(float64) string) string {
	if s.lo == s.hi {
		return f(s.med)
	}
	return fmt.Sprintf("%s [%s-%s]", f(s.med), strings.TrimSuffix(f(s.lo), "x"), f(s.hi))
}

// times is a ratio: "1.02x".
func times(x float64) string { return fmt.Sprintf("%.2fx", x) }

// fixed returns a formatter with d decimals.
func fixed(d int) func(float64) string {
	return func(x float64) string { return strconv.FormatFloat(x, 'f', d, 64) }
}

// grouped is x rounded, with thousands separated by commas: "31,268".
func grouped(x float64) string {
	n := int64(math.Round(x))
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// millions is x in millions with two decimals: "1.06 M".
func millions(x float64) string { return fmt.Sprintf("%.2f M", x/1e6) }

// percent is a fraction as a signed whole percentage: "+1%".
func signedPercent(x float64) string {
	p := math.Round(x * 100)
	if p == 0 {
		return "0%"
	}
	return fmt.Sprintf("%+.0f%%", p)
}
