package workload

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// ErrInvalidDef is wrapped by the errors of a Def that cannot be registered.
var ErrInvalidDef = errors.New("workload: invalid definition")

// Def defines a workload for the registry: its name, its own parameters and
// how to build it. Define makes one from a struct of typed parameters; a
// Def literal fits a workload without parameters.
type Def struct {
	// Name is the registry name (--workload): 1 to 64 bytes of a-z, 0-9, _
	// and -.
	Name string
	// Doc is one line saying what the workload computes; "" = none.
	Doc string
	// Params are the workload's own parameters, set with --param key=value
	// or the config file's param key. New only ever sees Args that hold
	// these keys with values of their kind and within their bounds.
	Params []Param
	// AnyParams accepts any key, each value typed by its text (an integer,
	// a float, true/false, else a string), for a workload that validates
	// its own (exec: the child program does). Default off.
	AnyParams bool
	// New builds the workload from validated Params with defaults filled.
	New func(p Params) (Workload, error)

	err error // what Define found wrong with its parameter struct
}

// Kind is the type of a Param's value.
type Kind int

// The kinds of Param values, and the Go types they decode to.
const (
	Int    Kind = iota + 1 // int64 in Args, any Go integer field
	Float                  // float64
	Bool                   // bool
	String                 // string
)

func (k Kind) String() string {
	return [...]string{"?", "an integer", "a number", "true or false", "a string"}[min(int(k), 4)]
}

// Param is one parameter of a workload.
type Param struct {
	Key     string  // --param key: 1 to MaxArgKeyBytes of a-z, 0-9, _
	Kind    Kind    // the type of its value
	Default any     // its value when unset: int64, float64, bool or string
	Min     float64 // Int, Float: the least value allowed
	Max     float64 // Int, Float: the largest value allowed; String: the most bytes (0 = MaxArgTextBytes)
	Doc     string  // one line for --help; "" = none
}

// check returns v, the value of p, as p's kind, or an error naming p and
// what it wants. Numbers in strings and integers as floats are converted,
// since an exec coordinator types values by their text.
func (p Param) check(v any) (any, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: param %s=%v: %s", ErrInvalidParams, p.Key, v, why)
	}
	if s, ok := v.(string); ok && p.Kind != String {
		v = inferValue(s)
	}
	switch p.Kind {
	case Int:
		var n int64
		switch x := v.(type) {
		case int64:
			n = x
		case float64:
			if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
				return nil, bad("want an integer")
			}
			n = int64(x)
		default:
			return nil, bad("want an integer")
		}
		if float64(n) < p.Min || float64(n) > p.Max {
			return nil, bad(fmt.Sprintf("must be between %v and %v", p.Min, p.Max))
		}
		return n, nil
	case Float:
		var f float64
		switch x := v.(type) {
		case int64:
			f = float64(x)
		case float64:
			f = x
		default:
			return nil, bad("want a number")
		}
		if f < p.Min || f > p.Max {
			return nil, bad(fmt.Sprintf("must be between %v and %v", p.Min, p.Max))
		}
		return f, nil
	case Bool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, bad("want true or false")
	case String:
		s, ok := v.(string)
		if !ok {
			return nil, bad("want a string")
		}
		if limit := p.maxLen(); len(s) > limit {
			return nil, bad(fmt.Sprintf("%d bytes, at most %d", len(s), limit))
		}
		return s, nil
	}
	return nil, bad("unknown kind")
}

func (p Param) maxLen() int {
	if p.Max > 0 && p.Max < MaxArgTextBytes {
		return int(p.Max)
	}
	return MaxArgTextBytes
}

// validate checks the definition itself, naming what is wrong.
func (d Def) validate() error {
	if d.err != nil {
		return d.err
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: workload %q: %s", ErrInvalidDef, d.Name, fmt.Sprintf(format, a...))
	}
	if d.Name == "" || len(d.Name) > 64 || strings.TrimLeft(d.Name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
		return bad("name: want 1 to 64 of a-z, 0-9, _ and -")
	}
	if d.New == nil {
		return bad("no New")
	}
	if len(d.Params) > MaxArgs {
		return bad("%d params, at most %d", len(d.Params), MaxArgs)
	}
	seen := map[string]bool{}
	for _, p := range d.Params {
		if err := checkKey(p.Key); err != nil {
			return bad("%v", err)
		}
		if seen[p.Key] {
			return bad("param %s declared twice", p.Key)
		}
		seen[p.Key] = true
		if (p.Kind == Int || p.Kind == Float) && !(p.Min <= p.Max) {
			return bad("param %s: min %v above max %v", p.Key, p.Min, p.Max)
		}
		if _, err := p.check(p.Default); err != nil {
			return bad("param %s: default: %v", p.Key, err)
		}
	}
	return nil
}

// param is d's parameter with key k.
func (d Def) param(k string) (Param, bool) {
	for _, p := range d.Params {
		if p.Key == k {
			return p, true
		}
	}
	return Param{}, false
}

// values checks a against d's parameters and returns every parameter's
// value, defaults included, typed by its kind.
func (d Def) values(a Args) (map[string]any, error) {
	m, err := a.Map()
	if err != nil {
		return nil, err
	}
	if d.AnyParams {
		return m, nil
	}
	out := make(map[string]any, len(d.Params))
	for _, p := range d.Params {
		out[p.Key] = p.Default
	}
	for k, v := range m {
		p, ok := d.param(k)
		if !ok {
			return nil, fmt.Errorf("%w: workload %s has no param %q (it has: %s)", ErrInvalidParams, d.Name, k, d.keys())
		}
		if out[k], err = p.check(v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (d Def) keys() string {
	if len(d.Params) == 0 {
		return "none"
	}
	ks := make([]string, len(d.Params))
	for i, p := range d.Params {
		ks[i] = p.Key
	}
	return strings.Join(ks, ", ")
}

// ParseArgs turns --param key=value pairs for the named workload into
// Args, typing each value by the workload's declaration. A later pair
// overrides an earlier one with the same key.
func ParseArgs(name string, pairs []string) (Args, error) {
	if len(pairs) == 0 {
		return "", nil
	}
	d, ok := Lookup(name)
	if !ok {
		return "", fmt.Errorf("%w %q (known: %v)", ErrUnknown, name, Names())
	}
	m := map[string]any{}
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", fmt.Errorf("%w: param %q: want key=value", ErrInvalidParams, kv)
		}
		k = strings.TrimSpace(k)
		if d.AnyParams {
			m[k] = inferValue(v)
			continue
		}
		p, ok := d.param(k)
		if !ok {
			return "", fmt.Errorf("%w: workload %s has no param %q (it has: %s)", ErrInvalidParams, name, k, d.keys())
		}
		var err error
		raw := any(v)
		if p.Kind != String {
			raw = inferValue(v)
		}
		if m[k], err = p.check(raw); err != nil {
			return "", err
		}
	}
	return MakeArgs(m)
}

// Define defines a workload whose own parameters are the exported fields
// of P that carry a param tag, with the values in defaults as defaults.
// build is called with a copy of defaults overwritten by the --param
// values, each checked against its field's kind and bounds:
//
//	type Params struct {
//		Shingle int    `param:"shingle" min:"1" max:"16" doc:"words per shingle"`
//		Lang    string `param:"lang" max:"8"`
//	}
//
// Integer and float fields need min and max tags (every parameter is
// bounded); a string's max is its length in bytes (default
// MaxArgTextBytes); bool fields need neither. A P that breaks these rules
// gives a Def that Register refuses, naming the field.
func Define[P any](name string, defaults P, build func(P) (Workload, error)) Def {
	d := Def{Name: name}
	t := reflect.TypeFor[P]()
	if t.Kind() != reflect.Struct {
		d.err = fmt.Errorf("%w: workload %q: params type %s is not a struct", ErrInvalidDef, name, t)
		return d
	}
	dv := reflect.ValueOf(defaults)
	var fields []int // field index of each of d.Params
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("param")
		if key == "" || !f.IsExported() {
			continue
		}
		p, err := paramOf(f, dv.Field(i))
		if err != nil {
			d.err = fmt.Errorf("%w: workload %q: field %s: %v", ErrInvalidDef, name, f.Name, err)
			return d
		}
		d.Params = append(d.Params, p)
		fields = append(fields, i)
	}
	d.New = func(p Params) (Workload, error) {
		vals, err := d.values(p.Args)
		if err != nil {
			return nil, err
		}
		v := reflect.New(t).Elem()
		v.Set(dv)
		for j, prm := range d.Params {
			setField(v.Field(fields[j]), vals[prm.Key])
		}
		return build(v.Interface().(P))
	}
	return d
}

// paramOf declares the parameter of struct field f, whose default is v.
func paramOf(f reflect.StructField, v reflect.Value) (Param, error) {
	p := Param{Key: f.Tag.Get("param"), Doc: f.Tag.Get("doc")}
	num := func(tag string) (float64, error) {
		s := f.Tag.Get(tag)
		if s == "" {
			return 0, fmt.Errorf("%s tag missing: numbers are bounded", tag)
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("%s tag %q: %v", tag, s, err)
		}
		return x, nil
	}
	var err error
	switch f.Type.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		p.Kind, p.Default = Int, v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		p.Kind, p.Default = Int, int64(v.Uint())
	case reflect.Float32, reflect.Float64:
		p.Kind, p.Default = Float, v.Float()
	case reflect.Bool:
		p.Kind, p.Default = Bool, v.Bool()
		return p, nil
	case reflect.String:
		p.Kind, p.Default = String, v.String()
		if f.Tag.Get("max") != "" {
			p.Max, err = num("max")
		}
		return p, err
	default:
		return p, fmt.Errorf("type %s: want an integer, float, bool or string", f.Type)
	}
	if p.Min, err = num("min"); err != nil {
		return p, err
	}
	if p.Max, err = num("max"); err != nil {
		return p, err
	}
	// The field must hold every value the bounds allow.
	if probe := reflect.New(f.Type).Elem(); p.Kind == Int && (overflows(probe, p.Min) || overflows(probe, p.Max)) {
		return p, fmt.Errorf("bounds %v..%v do not fit %s", p.Min, p.Max, f.Type)
	}
	return p, nil
}

func overflows(v reflect.Value, x float64) bool {
	if v.CanUint() {
		return x < 0 || v.OverflowUint(uint64(x))
	}
	return v.OverflowInt(int64(x))
}

func setField(f reflect.Value, v any) {
	switch x := v.(type) {
	case int64:
		if f.CanUint() {
			f.SetUint(uint64(x))
		} else {
			f.SetInt(x)
		}
	case float64:
		f.SetFloat(x)
	case bool:
		f.SetBool(x)
	case string:
		f.SetString(x)
	}
}

// Func is a Workload made of a name and a function: the adapter for a
// workload that needs nothing but its Process.
func Func(name string, process func(docs []string, out *Output) error) Workload {
	return funcWorkload{name, process}
}

type funcWorkload struct {
	name    string
	process func(docs []string, out *Output) error
}

func (f funcWorkload) Name() string                             { return f.name }
func (f funcWorkload) Process(docs []string, out *Output) error { return f.process(docs, out) }
