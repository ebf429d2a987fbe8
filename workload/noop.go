package workload

// noop does no computing: it echoes each document's text, repeated or cut to
// OutBytes bytes (zeros for an empty document), into Data with Stride =
// OutBytes. It isolates the wire: with it a batch costs only its encoding,
// transport and decoding, and the reply size is chosen independently of the
// request (`ferry bench transport` makes the two equal, like a raw echo).
// Copying is the only work, about 0.1 ms per MiB.
type noop struct {
	outBytes int
}

func newNoop(p Params) (Workload, error) {
	return &noop{outBytes: p.OutBytes}, nil
}

func (n *noop) Name() string { return "noop" }

// ResultBytes is OutBytes per document.
func (n *noop) ResultBytes(docs []string) int64 { return int64(n.outBytes) * int64(len(docs)) }

// Process appends OutBytes per document to out.Data (Stride = OutBytes).
func (n *noop) Process(docs []string, out *Output) error {
	out.Stride = n.outBytes
	for _, d := range docs {
		out.Data = appendEcho(out.Data, d, n.outBytes)
	}
	return nil
}

// appendEcho appends exactly n bytes: d repeated and cut, or zeros if d is empty.
func appendEcho(dst []byte, d string, n int) []byte {
	if d == "" {
		return append(dst, make([]byte, n)...)
	}
	for n > 0 {
		k := min(n, len(d))
		dst = append(dst, d[:k]...)
		n -= k
	}
	return dst
}
