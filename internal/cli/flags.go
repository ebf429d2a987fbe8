package cli

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// AddFlags registers one flag per field of the options struct that def
// holds (embedded groups included): named by the field's key with dashes,
// its value in def as default, its help tag as usage, and its short tag as
// shorthand. Fields without help are
// not flags, nor the fields of an embedded group tagged flags:"root" (the
// root command's persistent flags, registered there). Defaults thus come from one place: the value the command
// builds from its packages' WithDefaults.
func AddFlags(fs *pflag.FlagSet, def any) { addFlagsOf(fs, reflect.ValueOf(def)) }

func addFlagsOf(fs *pflag.FlagSet, v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		if f.Anonymous {
			if f.Tag.Get("flags") != "root" { // registered once, on the root command
				addFlagsOf(fs, fv)
			}
			continue
		}
		help := f.Tag.Get("help")
		if help == "" {
			continue
		}
		name, short := strings.ReplaceAll(f.Tag.Get("mapstructure"), "_", "-"), f.Tag.Get("short")
		switch {
		case f.Type == reflect.TypeFor[time.Duration]():
			fs.DurationP(name, short, time.Duration(fv.Int()), help)
		case f.Type.Kind() == reflect.String:
			fs.StringP(name, short, fv.String(), help)
		case f.Type.Kind() == reflect.Bool:
			fs.BoolP(name, short, fv.Bool(), help)
		case f.Type.Kind() == reflect.Int:
			fs.IntP(name, short, int(fv.Int()), help)
		case f.Type.Kind() == reflect.Int64:
			fs.Int64P(name, short, fv.Int(), help)
		case f.Type.Kind() == reflect.Uint64:
			fs.Uint64P(name, short, fv.Uint(), help)
		case f.Type.Kind() == reflect.Float64:
			fs.Float64P(name, short, fv.Float(), help)
		case f.Type == reflect.TypeFor[[]string]():
			fs.StringArrayP(name, short, fv.Interface().([]string), help) // repeated, never split at commas
		default:
			panic(fmt.Sprintf("addFlags: field %s has unsupported type %s", f.Name, f.Type))
		}
		if f.Tag.Get("hidden") == "true" {
			_ = fs.MarkHidden(name)
		}
	}
}
