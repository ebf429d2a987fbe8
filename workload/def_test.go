package workload

import (
	"errors"
	"strings"
	"testing"
)

type shingleParams struct {
	Shingle int     `param:"shingle" min:"1" max:"16" doc:"words per shingle"`
	Scale   float64 `param:"scale" min:"0" max:"1"`
	Lower   bool    `param:"lower"`
	Lang    string  `param:"lang" max:"8"`
	Ignored int     // no param tag: not a parameter
}

// shingles records the params it was built with.
var shingles = Define("shingles", shingleParams{Shingle: 3, Scale: 0.5, Lang: "en"}, func(p shingleParams) (Workload, error) {
	return Func("shingles", func(docs []string, out *Output) error {
		for range docs {
			if err := AppendValue(out, p); err != nil {
				return err
			}
		}
		return nil
	}), nil
})

func built(t *testing.T, d Def, a Args) shingleParams {
	t.Helper()
	wl, err := d.New(Params{Args: a})
	if err != nil {
		t.Fatal(err)
	}
	var out Output
	if err := wl.Process([]string{"x"}, &out); err != nil {
		t.Fatal(err)
	}
	p, err := Value[shingleParams](&out, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefineTypesAndBoundsParams(t *testing.T) {
	if err := shingles.validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := shingles.keys(), "shingle, scale, lower, lang"; got != want {
		t.Fatalf("params = %s, want %s", got, want)
	}
	tests := []struct {
		name    string
		pairs   []string
		want    shingleParams
		wantErr string
	}{
		{name: "defaults", want: shingleParams{Shingle: 3, Scale: 0.5, Lang: "en"}},
		{name: "every kind", pairs: []string{"shingle=5", "scale=1", "lower=true", "lang=fr"},
			want: shingleParams{Shingle: 5, Scale: 1, Lower: true, Lang: "fr"}},
		{name: "later wins", pairs: []string{"shingle=5", "shingle=7"}, want: shingleParams{Shingle: 7, Scale: 0.5, Lang: "en"}},
		{name: "string that looks like a number", pairs: []string{"lang=42"}, want: shingleParams{Shingle: 3, Scale: 0.5, Lang: "42"}},
		{name: "unknown key", pairs: []string{"shingles=5"}, wantErr: `workload shingles has no param "shingles" (it has: shingle, scale, lower, lang)`},
		{name: "over max", pairs: []string{"shingle=17"}, wantErr: "param shingle=17: must be between 1 and 16"},
		{name: "under min", pairs: []string{"scale=-0.1"}, wantErr: "param scale=-0.1: must be between 0 and 1"},
		{name: "not an integer", pairs: []string{"shingle=2.5"}, wantErr: "param shingle=2.5: want an integer"},
		{name: "not a bool", pairs: []string{"lower=yes"}, wantErr: "param lower=yes: want true or false"},
		{name: "string too long", pairs: []string{"lang=abcdefghi"}, wantErr: "param lang=abcdefghi: 9 bytes, at most 8"},
		{name: "no equals", pairs: []string{"shingle"}, wantErr: `param "shingle": want key=value`},
	}
	if err := Register(shingles); err != nil && !errors.Is(err, ErrDuplicate) {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseArgs("shingles", tt.pairs)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseArgs = %v, want ErrInvalidParams with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := built(t, shingles, a); got != tt.want {
				t.Errorf("built with %+v, want %+v", got, tt.want)
			}
			// What travels is checked again where it is built: New.
			if _, err := New("shingles", Params{Args: a}); err != nil {
				t.Errorf("New: %v", err)
			}
		})
	}
}

func TestNewChecksArgsFromTheWire(t *testing.T) {
	if err := Register(shingles); err != nil && !errors.Is(err, ErrDuplicate) {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    map[string]any
		want string
	}{
		{"out of bounds", map[string]any{"shingle": 1000}, "must be between 1 and 16"},
		{"wrong type", map[string]any{"lower": 3}, "want true or false"},
		{"unknown", map[string]any{"x": 1}, `no param "x"`},
		{"built-in rejects args", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := MakeArgs(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			name := "shingles"
			if tc.m == nil {
				name, a = "embed", mustArgs(t, map[string]any{"dim": 3})
				tc.want = `workload embed has no param "dim"`
			}
			_, err = New(name, Params{Args: a})
			if !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want ErrInvalidParams with %q", err, tc.want)
			}
		})
	}
}

func mustArgs(t *testing.T, m map[string]any) Args {
	t.Helper()
	a, err := MakeArgs(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDefineRefusesUnboundedOrUnsupported(t *testing.T) {
	type noMax struct {
		N int `param:"n" min:"0"`
	}
	type slice struct {
		S []int `param:"s"`
	}
	type tooWide struct {
		N int8 `param:"n" min:"0" max:"1000"`
	}
	type badKey struct {
		N bool `param:"N-1"`
	}
	build := func(any) (Workload, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		d    Def
		want string
	}{
		{"no max", Define("a", noMax{}, func(noMax) (Workload, error) { return build(nil) }), "max tag missing"},
		{"slice", Define("b", slice{}, func(slice) (Workload, error) { return build(nil) }), "want an integer, float, bool or string"},
		{"too wide", Define("c", tooWide{}, func(tooWide) (Workload, error) { return build(nil) }), "do not fit int8"},
		{"bad key", Define("d", badKey{}, func(badKey) (Workload, error) { return build(nil) }), "param key"},
		{"not a struct", Define("e", 3, func(int) (Workload, error) { return build(nil) }), "not a struct"},
		{"bad name", Def{Name: "Upper Case", New: func(Params) (Workload, error) { return build(nil) }}, "name"},
		{"no New", Def{Name: "f"}, "no New"},
		{"default out of bounds", Def{Name: "g", New: func(Params) (Workload, error) { return build(nil) },
			Params: []Param{{Key: "n", Kind: Int, Default: int64(5), Min: 0, Max: 1}}}, "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Register(tc.d)
			if !errors.Is(err, ErrInvalidDef) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Register = %v, want ErrInvalidDef with %q", err, tc.want)
			}
		})
	}
	if err := Register(Def{Name: "embed", New: newEmbed}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("Register(embed) = %v, want ErrDuplicate", err)
	}
}

func TestArgsRoundTripAndInference(t *testing.T) {
	m := map[string]any{"i": -70000, "f": 2.5, "b": false, "s": "x y", "z": nil, "u": uint8(200)}
	a := mustArgs(t, m)
	got, err := a.Map()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"i": int64(-70000), "f": 2.5, "b": false, "s": "x y", "z": nil, "u": int64(200)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if b := mustArgs(t, want); b != a {
		t.Errorf("encoding is not canonical: %q != %q", b, a)
	}
	if got, want := a.String(), "b=false f=2.5 i=-70000 s=x y u=200 z=<nil>"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	for in, want := range map[string]any{"42": int64(42), "-1.5": -1.5, "true": true, "True": "True", `"42"`: "42", "1e3": 1000.0, "inf": "inf", "": ""} {
		if got := inferValue(in); got != want {
			t.Errorf("inferValue(%q) = %#v, want %#v", in, got, want)
		}
	}
}

func FuzzArgsMap(f *testing.F) {
	a, _ := MakeArgs(map[string]any{"k": 1, "s": "text", "f": 0.5, "b": true, "n": nil})
	f.Add([]byte(a))
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x81, 0xa1, 'k', 0xdb, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Args(b).Map()
		if err != nil {
			return
		}
		if len(m) > MaxArgs {
			t.Fatalf("%d keys over the limit", len(m))
		}
		again, err := MakeArgs(m)
		if err != nil {
			t.Fatalf("decoded args do not encode: %v", err)
		}
		if m2, err := again.Map(); err != nil || len(m2) != len(m) {
			t.Fatalf("re-encoded args decode to %v, %v", m2, err)
		}
	})
}
