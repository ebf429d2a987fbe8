package llm

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzMockCompletions feeds the Mock arbitrary bodies: it must answer 200,
// 400 or 413, never panic.
func FuzzMockCompletions(f *testing.F) {
	f.Add(chatBody("the quick brown fox"))
	f.Add(`{"messages":[{"role":"user","content":""}],"max_tokens":1}`)
	f.Add(`{"messages":null}`)
	f.Add(`{"messages":[{"content":7}]}`)
	f.Add("\x00\xff{")
	m, err := NewMock(MockConfig{MaxBodyBytes: 4096})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		w := httptest.NewRecorder()
		m.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body)))
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Errorf("status %d for body %q", w.Code, body)
		}
	})
}

// FuzzRetryAfter: any header value gives a non-negative wait, never a panic.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"1", "0.05", "-3", "1e308", "NaN", "Wed, 21 Oct 2015 07:28:00 GMT", ""} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, ra, ms string) {
		h := http.Header{}
		h.Set("Retry-After", ra)
		h.Set("Retry-After-Ms", ms)
		if d := retryAfter(h, time.Unix(0, 0)); d < 0 {
			t.Errorf("retryAfter(%q, %q) = %v < 0", ra, ms, d)
		}
	})
}
