package llm

import (
	"math"
	"strings"
)

// countTokens approximates tokens as whitespace-separated words: the Mock only
// needs a count that is cheap, deterministic and proportional to the prompt.
func countTokens(s string) int { return len(strings.Fields(s)) }

// replyTokens is how many tokens the Mock answers to prompt tokens: ratio of
// them rounded up, at least one for a non-empty prompt, at most maxTokens (if > 0).
func replyTokens(promptTokens int, ratio float64, maxTokens int) (n int, truncated bool) {
	if promptTokens == 0 {
		return 0, false
	}
	n = max(1, int(math.Ceil(float64(promptTokens)*ratio)))
	if maxTokens > 0 && n > maxTokens {
		return maxTokens, true
	}
	return n, false
}

// replyText is the Mock's deterministic "summary": the prompt's words in
// reverse order, cycling when the reply is longer than the prompt. Anyone
// holding the prompt can check it, which is the point.
func replyText(prompt string, n int) string {
	words := strings.Fields(prompt)
	if len(words) == 0 || n <= 0 {
		return ""
	}
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[len(words)-1-i%len(words)])
	}
	return b.String()
}
