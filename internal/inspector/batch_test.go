package inspector_test

import (
	"fmt"
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
