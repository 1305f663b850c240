package inspector_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/inspector"
)

var fuzzSeeds = []string{
	``, `""`, `{}`, `[]`, `null`, `{"user_id":1}`, `{"user_id": "a"}`, `{"user_id": "aa"}`, `{"user_id": ""}`,
	`{"user_id": "` + validID + `"}`, `{"user_id": "` + badCharID + `"}`, `["` + validID + `"]`,
	`{"appointment": {"locator": "` + locator + `", "encrypted_blob": "00ff", "to_self_delay": 42}, "signature": "` + sig + `"}`,
	`[["` + locator + `", "", 1], "x"]`, `{"signature": "aa"}`, `{"appointment": null, "signature": "aa"}`,
	`{"locator": "` + locator + `", "signature": "` + sig + `"}`, `{"signature": "` + sig + `"}`,
	`{"x": [1, {"y": [true, false, null, -1.5e-3]}], "signature": "\ud83d\ude00"}`, "{\"signature\": \"\xff\"}",
}

// checkRejection asserts what every rejection must look like.
func checkRejection(t *testing.T, body []byte, err error) {
	t.Helper()
	var ierr *inspector.Error
	if !errors.As(err, &ierr) {
		t.Fatalf("body %q: error %v is not an *inspector.Error", body, err)
	}
	if ierr.Code < 1 || ierr.Code > 6 || ierr.Message == "" {
		t.Fatalf("body %q: bad rejection %+v", body, ierr)
	}
	if ierr.Code == 1 && (!strings.HasPrefix(ierr.Message, "missing field `") || strings.Contains(ierr.Message, " at")) {
		t.Fatalf("body %q: missing-field message %q", body, ierr.Message)
	}
}

// checkAccepted asserts that serde-compatible acceptance implies valid JSON.
func checkAccepted(t *testing.T, body []byte) {
	t.Helper()
	if !json.Valid(body) {
		t.Fatalf("accepted invalid JSON %q", body)
	}
}

func jsonString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
}

func FuzzInspectRegister(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := inspector.InspectRegister(body)
		if err != nil {
			checkRejection(t, body, err)
			return
		}
		checkAccepted(t, body)
		again, err := inspector.InspectRegister([]byte(`{"user_id":"` + hex.EncodeToString(req.UserID[:]) + `"}`))
		if err != nil || again != req {
			t.Fatalf("re-inspect of %+v: %+v, %v", req, again, err)
		}
	})
}

func FuzzInspectAddAppointment(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := inspector.InspectAddAppointment(body)
		if err != nil {
			checkRejection(t, body, err)
			return
		}
		checkAccepted(t, body)
		a := req.Appointment
		canonical := fmt.Sprintf(`{"appointment":{"locator":"%s","encrypted_blob":"%s","to_self_delay":%d},"signature":%s}`,
			a.Locator, hex.EncodeToString(a.EncryptedBlob), a.ToSelfDelay, jsonString(t, req.Signature))
		again, err := inspector.InspectAddAppointment([]byte(canonical))
		if err != nil || again.Appointment.Locator != a.Locator || !bytes.Equal(again.Appointment.EncryptedBlob, a.EncryptedBlob) ||
			again.Appointment.ToSelfDelay != a.ToSelfDelay || again.Signature != req.Signature {
			t.Fatalf("re-inspect of %+v: %+v, %v", req, again, err)
		}
	})
}

func FuzzInspectGetAppointment(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := inspector.InspectGetAppointment(body)
		if err != nil {
			checkRejection(t, body, err)
			return
		}
		checkAccepted(t, body)
		canonical := fmt.Sprintf(`{"locator":"%s","signature":%s}`, req.Locator, jsonString(t, req.Signature))
		again, err := inspector.InspectGetAppointment([]byte(canonical))
		if err != nil || again != req {
			t.Fatalf("re-inspect of %+v: %+v, %v", req, again, err)
		}
	})
}

func FuzzInspectGetSubscriptionInfo(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := inspector.InspectGetSubscriptionInfo(body)
		if err != nil {
			checkRejection(t, body, err)
			return
		}
		checkAccepted(t, body)
		again, err := inspector.InspectGetSubscriptionInfo([]byte(`{"signature":` + jsonString(t, req.Signature) + `}`))
		if err != nil || again != req {
			t.Fatalf("re-inspect of %+v: %+v, %v", req, again, err)
		}
	})
}
