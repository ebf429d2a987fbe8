package workload

import (
	"strings"
	"testing"
)

func TestNoopEchoesToOutBytes(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		outBytes int
		want     string
	}{
		{name: "cut", doc: "abcdef", outBytes: 4, want: "abcd"},
		{name: "exact", doc: "abcd", outBytes: 4, want: "abcd"},
		{name: "repeated", doc: "abc", outBytes: 7, want: "abcabca"},
		{name: "empty doc is zeros", doc: "", outBytes: 3, want: "\x00\x00\x00"},
		{name: "default 16", doc: "xy", outBytes: 0, want: strings.Repeat("xy", 8)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := process(t, mustNew(t, "noop", Params{OutBytes: tt.outBytes}), []string{tt.doc, tt.doc})
			if got, want := string(out.Data), tt.want+tt.want; got != want {
				t.Errorf("Data = %q, want %q", got, want)
			}
			if got, want := out.Stride, len(tt.want); got != want {
				t.Errorf("Stride = %d, want %d", got, want)
			}
			if out.Dim != 0 || len(out.Vecs) != 0 || len(out.Spans) != 0 {
				t.Errorf("noop produced vectors or spans: %+v", out)
			}
		})
	}
}
