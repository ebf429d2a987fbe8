package proto

import (
	"errors"
	"testing"
)

func TestBatchSubjectRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name        string
		job         string
		first       int64
		count       int
		subj, reply string
	}{
		{"start", "job-1", 0, 100, "ferry.batch.job-1.0-100", "ferry.result.job-1.0-100"},
		{"split half", "A_b", 12345, 7, "ferry.batch.A_b.12345-7", "ferry.result.A_b.12345-7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := BatchSubject(tc.job, tc.first, tc.count); got != tc.subj {
				t.Errorf("BatchSubject = %q, want %q", got, tc.subj)
			}
			if got := ResultSubject(tc.job, tc.first, tc.count); got != tc.reply {
				t.Errorf("ResultSubject = %q, want %q", got, tc.reply)
			}
			for _, s := range []string{tc.subj, tc.reply} {
				job, first, n, err := ParseBatchSubject(s)
				if err != nil || job != tc.job || first != tc.first || n != tc.count {
					t.Errorf("ParseBatchSubject(%q) = %q, %d, %d, %v", s, job, first, n, err)
				}
			}
		})
	}
}

func TestParseBatchSubjectRejects(t *testing.T) {
	for _, s := range []string{
		"", "ferry.batch", "ferry.batch.j", "ferry.work.j.0-1", "nats.batch.j.0-1",
		"ferry.batch.j.0", "ferry.batch.j.x-1", "ferry.batch.j.0-0", "ferry.batch.j.-1-2", "ferry.batch.j.0-1.extra",
	} {
		if _, _, _, err := ParseBatchSubject(s); !errors.Is(err, ErrBadSubject) {
			t.Errorf("ParseBatchSubject(%q) error = %v, want ErrBadSubject", s, err)
		}
	}
}

func TestValidJobID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"nightly-2024_01", true},
		{"a", true},
		{"", false},
		{"has.dot", false},
		{"wild*", false},
		{"sp ace", false},
		{string(make([]byte, 65)), false},
	} {
		if got := ValidJobID(tc.id); got != tc.want {
			t.Errorf("ValidJobID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}
