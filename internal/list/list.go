// Package list parses the comma-separated lists of ferry's config keys
// ("serial,goroutines", "1,4,16,auto", "10us,1ms"), naming the key on error.
// It knows no key: callers pass the item parser.
package list

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every error of Parse.
var ErrInvalid = errors.New("invalid config")

// Parse parses s item by item; an empty item is skipped.
func Parse[T any](s, key string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %s=%s: %q: %v", ErrInvalid, key, s, f, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// OneOf parses an item that must be one of names.
func OneOf(names []string) func(string) (string, error) {
	return func(s string) (string, error) {
		if !slices.Contains(names, s) {
			return "", fmt.Errorf("is not one of %s", strings.Join(names, ", "))
		}
		return s, nil
	}
}

// AtLeast parses an integer of at least lo.
func AtLeast(lo int) func(string) (int, error) {
	return func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err == nil && n < lo {
			err = fmt.Errorf("must be at least %d", lo)
		}
		return n, err
	}
}

// Or is l, or the one value v when l is empty.
func Or[T any](l []T, v T) []T {
	if len(l) == 0 {
		return []T{v}
	}
	return l
}

// Size parses a positive byte count: "64", "64B", "1KiB", "4MiB" (K and M
// are KiB and MiB).
func Size(f string) (int, error) {
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}, {"B", 1}} {
		if strings.HasSuffix(f, u.suffix) {
			f, mult = strings.TrimSpace(strings.TrimSuffix(f, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.Atoi(f)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a positive size", f)
	}
	return n * mult, nil
}

// Words splits s at commas, trims each item and drops empty ones.
func Words(s string) []string {
	w, _ := Parse(s, "", func(f string) (string, error) { return f, nil })
	return w
}
