package report

import (
	"bytes"
	"strings"
	"testing"
)

func TestPlanesLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Mode
		want string
	}{
		{"nats run says nothing", Mode{Mode: "processes", Planes: map[string]string{"a": "nats"}}, ""},
		{"shm run", Mode{Mode: "processes/shm", Planes: map[string]string{"a": "shm", "b": "shm"}}, "data plane shm for 2 of 2 workers"},
		{"fallback named", Mode{Mode: "processes/shm", Planes: map[string]string{"a": "shm", "b": "nats"}}, "data plane nats for 1, shm for 1 of 2 workers (nats: fell back, no shared memory with this process)"},
		{"no batches", Mode{Mode: "processes/shm"}, "data plane: no worker was sent a batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := planesLine(tc.m); got != tc.want {
				t.Errorf("planesLine = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTransportShmColumns(t *testing.T) {
	r := &Transport{Points: []FloorPoint{{Bytes: 1 << 20, RawP50us: 1000, FerryP50: 1100, Ratio: 1.1, ShmP50us: 200, ShmRatio: 0.2}}}
	var b bytes.Buffer
	if err := writeTransportText(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"shm_p50_us", "shm_ratio", "0.20x"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("transport text lacks %q:\n%s", want, b.String())
		}
	}
	r.Points[0].ShmP50us, r.Points[0].ShmRatio = 0, 0
	b.Reset()
	writeTransportText(&b, r)
	if strings.Contains(b.String(), "shm") {
		t.Errorf("transport text without shm figures names shm:\n%s", b.String())
	}
}

func TestBoundarySplit(t *testing.T) {
	r := &Report{Modes: []Mode{{Mode: "goroutines", CPUus: 6}, {Mode: "processes", CPUus: 10}, {Mode: "processes/shm", CPUus: 7.5}}}
	got := boundarySplit(r)
	for _, want := range []string{"processes 10.0 us", "goroutines 6.0", "process boundary 1.5 (shm)", "broker transport 2.5 (NATS)", "0.80x"} {
		if !strings.Contains(got, want) {
			t.Errorf("split %q lacks %q", got, want)
		}
	}
	r.Modes = r.Modes[:2]
	if got := boundarySplit(r); got != "" {
		t.Errorf("split without a shm row = %q, want none", got)
	}
}
