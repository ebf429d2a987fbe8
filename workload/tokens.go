package workload

import (
	"unicode"
	"unicode/utf8"
)

// A token is a maximal run of letters, digits and combining marks (marks keep
// words in scripts such as Devanagari whole). Everything else, including
// invalid UTF-8, separates tokens. embed, infer and chunk share this so a
// chunk's token count is the count the embedding saw.

func isWordASCII(c byte) bool {
	return c-'a' < 26 || c-'A' < 26 || c-'0' < 10
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// nextToken returns the byte range [start, end) of the first token of s at
// or after byte i; start == end == len(s) when there is none. It does not
// allocate, so callers loop: for s, e := nextToken(t, 0); s < e; s, e = nextToken(t, e).
func nextToken(s string, i int) (start, end int) {
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if isWordASCII(c) {
				break
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if isWordRune(r) {
			break
		}
		i += n
	}
	start = i
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if !isWordASCII(c) {
				break
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if !isWordRune(r) {
			break
		}
		i += n
	}
	return start, i
}

// appendLower appends the lowercase form of tok to dst and reports whether
// tok was pure ASCII (then every byte is one character).
func appendLower(dst []byte, tok string) ([]byte, bool) {
	ascii := true
	for i := 0; i < len(tok); {
		c := tok[i]
		if c < utf8.RuneSelf {
			if c-'A' < 26 {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		ascii = false
		r, n := utf8.DecodeRuneInString(tok[i:])
		dst = utf8.AppendRune(dst, unicode.ToLower(r))
		i += n
	}
	return dst, ascii
}
