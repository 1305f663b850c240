package inspector_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/inspector"
)

func addBody(loc string) string {
	return fmt.Sprintf(`{"appointment":{"locator":"%s","encrypted_blob":"aa","to_self_delay":42},"signature":"%s"}`, loc, sig)
}

func TestInspectAddAppointmentsWholeBody(t *testing.T) {
	tooMany := "[" + strings.Repeat(addBody(locator)+",", 1000) + addBody(locator) + "]"
	runCases(t, func(b []byte) error { _, err := inspector.InspectAddAppointments(b); return err }, []inspectCase{
		{"valid", `{"appointments":[` + addBody(locator) + `]}`, 0, "", false},
		{"not json", `nope`, 6, "expected ident at line 1 column 2", false},
		{"empty body", ``, 6, "EOF while parsing a value at line 1 column 0", false},
		{"not an object", `"x"`, 3, `invalid type: string "x", expected struct AddAppointmentsRequest at line 1 column 3`, false},
		{"no appointments", `{}`, 1, "missing field `appointments`", false},
		{"appointments null", `{"appointments":null}`, 3, "invalid type: null, expected a sequence at line 1 column 20", false},
		{"appointments object", `{"appointments":{}}`, 3, "invalid type: map, expected a sequence", true},
		{"empty list", `{"appointments":[]}`, 6, "`appointments` is empty", false},
		{"too many", `{"appointments":` + tooMany + `}`, 6, "`appointments` holds 1001 items, at most 1000 are allowed", false},
		{"bad item syntax", `{"appointments":[{"appointment":]}`, 6, "expected value at line 1 column 33", false},
		{"trailing comma", `{"appointments":[{},]}`, 6, "trailing comma", true},
		{"unclosed list", `{"appointments":[{}`, 6, "EOF while parsing a list at line 1 column 19", false},
		{"duplicate field", `{"appointments":[],"appointments":[]}`, 6, "duplicate field `appointments`", true},
	})
}

func TestInspectAddAppointmentsPerItem(t *testing.T) {
	items := []string{
		addBody(locator),
		`{}`,
		`  {"signature":"` + sig + `","appointment":null}`,
		addBody(locator32),
		addBody("zz"),
		`{"appointment":{"locator":"` + locator + `","encrypted_blob":"` + strings.Repeat("ab", 1100) + `","to_self_delay":1},"signature":"x"}`,
		`[1]`,
		addBody(locator),
	}
	body := "{\"appointments\": [\n" + strings.Join(items, ",\n") + "]}"
	got, err := inspector.InspectAddAppointments([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(items) {
		t.Fatalf("%d items, want %d", len(got), len(items))
	}
	for i, it := range got {
		_, alone := inspector.InspectAddAppointment([]byte(strings.TrimSpace(items[i])))
		if i == 5 {
			if ie, ok := it.Err.(*inspector.Error); !ok || ie.Code != 6 || !strings.Contains(ie.Message, "too large") {
				t.Errorf("oversized item: %v", it.Err)
			}
			continue
		}
		if fmt.Sprint(it.Err) != fmt.Sprint(alone) {
			t.Errorf("item %d: %v, alone %v", i, it.Err, alone)
		}
	}
	if got[0].Err != nil || got[0].Request.Signature != sig || got[0].Request.Appointment.EncryptedBlob[0] != 0xaa {
		t.Fatalf("item 0 = %+v", got[0])
	}
	if ie, ok := got[1].Err.(*inspector.Error); !ok || ie.Code != 1 {
		t.Fatalf("item 1 = %v, want missing field", got[1].Err)
	}
}

// A list far over the item bound is refused with its exact count, without keeping a slice of
// it: the inspection allocates less than the body itself. Before, a 2.2 MB list of a million
// "0" items (221 bytes as a zstd /add_appointments body) made it allocate 150 MB.
func TestInspectAddAppointmentsLongListKeepsNoSliceOfIt(t *testing.T) {
	for _, item := range []string{"0", "{}", addBody(locator)} {
		n := 2_199_000 / (len(item) + 1)
		body := []byte(`{"appointments":[` + strings.Repeat(item+",", n) + item + `]}`)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := inspector.InspectAddAppointments(body)
		runtime.ReadMemStats(&after)
		want := fmt.Sprintf("`appointments` holds %d items, at most 1000 are allowed", n+1)
		if ie, ok := err.(*inspector.Error); !ok || ie.Code != 6 || ie.Message != want {
			t.Fatalf("%d items %q: %v, want code 6 %q", n+1, item, err, want)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(body)) {
			t.Errorf("%d items %q: inspecting a %d-byte body allocated %d bytes", n+1, item, len(body), alloc)
		}
	}
}

// Items past the bound are still checked: a syntax error after them is the body's error.
func TestInspectAddAppointmentsSyntaxErrorPastTheBound(t *testing.T) {
	body := `{"appointments":[` + strings.Repeat("0,", 1500) + `x]}`
	_, err := inspector.InspectAddAppointments([]byte(body))
	want := fmt.Sprintf("expected value at line 1 column %d", len(`{"appointments":[`)+3000+1)
	if ie, ok := err.(*inspector.Error); !ok || ie.Code != 6 || ie.Message != want {
		t.Fatalf("got %v, want code 6 %q", err, want)
	}
}
