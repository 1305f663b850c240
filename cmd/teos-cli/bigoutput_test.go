package main

import (
	"encoding/json"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/teos-go/teos/internal/api/msglimit"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// writeRecorder keeps what was written and the largest single write.
type writeRecorder struct {
	n, largest int
	data       []byte
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.n += len(p)
	w.largest = max(w.largest, len(p))
	w.data = append(w.data, p...)
	return len(p), nil
}

// TestBigAnswerIsStreamed: getallappointments prints a big answer entry by entry, in writes of
// bounded size, rather than building the whole document (for a 256 MiB answer, over half a
// GB of hex, then as much JSON, then as much indented JSON) before writing it; the document is
// the same.
func TestBigAnswerIsStreamed(t *testing.T) {
	f := newFake(t)
	const n = 3000 // 1 KiB blobs: about 6 MB of JSON
	f.appts = make([]*commonv2.AppointmentData, n)
	for i := range f.appts {
		f.appts[i] = &commonv2.AppointmentData{AppointmentData: &commonv2.AppointmentData_Appointment{Appointment: &commonv2.Appointment{
			Locator: seq(16, byte(i)), EncryptedBlob: seq(1024, byte(i)), ToSelfDelay: uint32(i)}}}
	}
	dir, port := serveFake(t, f)
	var out writeRecorder
	var errb writeRecorder
	code := run([]string{"--datadir", dir, "--rpcport", strconv.Itoa(port), "getallappointments"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.data)
	}
	var doc struct {
		Appointments []appointmentJSON `json:"appointments"`
	}
	if err := json.Unmarshal(out.data, &doc); err != nil || len(doc.Appointments) != n || doc.Appointments[n-1].ToSelfDelay != n-1 {
		t.Fatalf("output does not parse to %d appointments: %v", n, err)
	}
	want, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if string(want)+"\n" != string(out.data) {
		t.Fatal("output is not the pretty-printed document")
	}
	if out.largest > 1<<20 {
		t.Fatalf("a single write of %d bytes out of %d: the document was built whole before printing", out.largest, out.n)
	}
}

// TestAnswerOverTheLimitSaysWhatStillWorks: a get_all_appointments answer over the tower's
// message bound (msglimit, here shrunk to 10 kB) prints the tower's message and what the operator
// can do instead.
func TestAnswerOverTheLimitSaysWhatStillWorks(t *testing.T) {
	f := newFake(t)
	f.appts = make([]*commonv2.AppointmentData, 100)
	for i := range f.appts {
		f.appts[i] = &commonv2.AppointmentData{AppointmentData: &commonv2.AppointmentData_Appointment{Appointment: &commonv2.Appointment{
			Locator: seq(16, byte(i)), EncryptedBlob: seq(200, byte(i)), ToSelfDelay: 42}}}
	}
	dir, port := serveFake(t, f, grpc.ChainUnaryInterceptor(msglimit.Answers(10_000, nil)))
	code, out, errOut := runCLI("--datadir", dir, "--rpcport", strconv.Itoa(port), "getallappointments")
	size := proto.Size(&teosv2.GetAllAppointmentsResponse{Appointments: f.appts})
	want := "the answer (" + strconv.Itoa(size) + " bytes) is larger than the tower sends in one message (10000 bytes)\n" +
		"teos-cli: the tower holds more appointments than one answer carries; getappointments <locator> lists those of one locator\n"
	if code != 1 || out != "" || errOut != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, want)
	}
}
