package workload_test

import (
	"fmt"
	"strings"

	"github.com/ferrylab/ferry/workload"
)

// Params of a workload are a struct: each field with a param tag is one
// --param key, typed by the field and bounded by its tags.
type wordParams struct {
	MinLen int  `param:"min_len" min:"1" max:"64" doc:"shortest word counted"`
	Lower  bool `param:"lower" doc:"count words case-insensitively"`
}

// words counts each document's words of at least MinLen bytes.
var words = workload.Define("words", wordParams{MinLen: 1}, func(p wordParams) (workload.Workload, error) {
	return workload.Func("words", func(docs []string, out *workload.Output) error {
		out.Dim = 1
		for _, d := range docs {
			n := 0
			for _, w := range strings.Fields(d) {
				if len(w) >= p.MinLen {
					n++
				}
			}
			out.Vecs = append(out.Vecs, float32(n))
		}
		return nil
	}), nil
})

// A workload is defined once, registered (ferry.Main(words) does it for
// a binary), and built by name with its params: what every mode and every
// worker process does with the params each batch carries.
func ExampleDefine() {
	if err := workload.Register(words); err != nil {
		fmt.Println(err)
		return
	}
	args, err := workload.ParseArgs("words", []string{"min_len=4"}) // --param min_len=4
	if err != nil {
		fmt.Println(err)
		return
	}
	wl, err := workload.New("words", workload.Params{Args: args})
	if err != nil {
		fmt.Println(err)
		return
	}
	var out workload.Output
	errs := workload.Compute(wl, []string{"a ferry crosses the river", "to and fro"}, &out, nil)
	fmt.Println(out.Vecs, len(errs))

	_, err = workload.ParseArgs("words", []string{"min_len=100"})
	fmt.Println(err)
	// Output:
	// [3 0] 0
	// workload: invalid params: param min_len=100: must be between 1 and 64
}

// A result of one's own type per document travels as msgpack bytes.
func ExampleAppendValue() {
	type entity struct {
		Text  string
		Start int
	}
	var out workload.Output
	for _, doc := range []string{"Ferry to Oslo", "no names here"} {
		var found []entity
		for i, w := range strings.Fields(doc) {
			if w[0] >= 'A' && w[0] <= 'Z' {
				found = append(found, entity{w, i})
			}
		}
		if err := workload.AppendValue(&out, found); err != nil {
			fmt.Println(err)
			return
		}
	}
	for i := range 2 {
		v, err := workload.Value[[]entity](&out, i)
		fmt.Println(v, err)
	}
	// Output:
	// [{Ferry 0} {Oslo 2}] <nil>
	// [] <nil>
}
