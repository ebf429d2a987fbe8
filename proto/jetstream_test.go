package proto

import (
	"errors"
	"math"
	"strconv"
	"testing"
	"time"
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
		// Forged ranges (issue 13): counts up to MaxInt64, first+count past
		// it, other spellings of a number, a job that is no job ID.
		"ferry.result.j.5-9223372036854775807", "ferry.result.j.9223372036854775807-1",
		"ferry.result.j.9223372036854775800-8", "ferry.result.j.5-4294967296", "ferry.result.j.99999999999999999999-1",
		"ferry.result.j.+5-3", "ferry.result.j.5-+3", "ferry.result.j.05-3", "ferry.result.j.5-03", "ferry.result.j. 5-3",
		"ferry.result.j*.0-1", "ferry.result..0-1",
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

func TestParseDeadline(t *testing.T) {
	for _, tc := range []struct {
		name, v string
		want    time.Duration
		ok      bool
	}{
		{"absent", "", 0, true},
		{"two seconds", "2000000000", 2 * time.Second, true},
		{"a day", strconv.FormatInt(int64(MaxDeadline), 10), MaxDeadline, true},
		{"zero", "0", 0, false},
		{"negative", "-1", 0, false},
		{"past a day", strconv.FormatInt(int64(MaxDeadline)+1, 10), 0, false},
		{"past int64", "9223372036854775808", 0, false},
		{"not a number", "2s", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDeadline(tc.v)
			if got != tc.want || (err == nil) != tc.ok {
				t.Errorf("ParseDeadline(%q) = %v, %v; want %v, ok=%v", tc.v, got, err, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseBatchSubject: whatever a subject holds, a range that parses is
// written back the same way and ends within int64.
func FuzzParseBatchSubject(f *testing.F) {
	for _, s := range []string{"ferry.batch.j.0-100", "ferry.result.job-1.12345-7", "ferry.result.j.5-9223372036854775807", "ferry.result.j.+5-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		job, first, n, err := ParseBatchSubject(s)
		if err != nil {
			return
		}
		if first < 0 || n <= 0 || first > math.MaxInt64-int64(n) {
			t.Fatalf("ParseBatchSubject(%q) = %d, %d: out of range", s, first, n)
		}
		if BatchSubject(job, first, n) != s && ResultSubject(job, first, n) != s {
			t.Fatalf("ParseBatchSubject(%q) = %q, %d, %d: another spelling of that range", s, job, first, n)
		}
	})
}
