package inspector_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/inspector"
	"github.com/teos-go/teos/pkg/teos"
)

const (
	validID   = "020dea894c967319407265764aba31bdef75d463f96800f34dd6df61380d82dfc0" // VECTORS §4
	prefix05  = "050dea894c967319407265764aba31bdef75d463f96800f34dd6df61380d82dfc0" // not a key, still 33 bytes
	badCharID = "022fa2900ed7fc07b4e8ca3ea081e846245b0497944644aa78ea0b994ac22074dZ"
	locator   = "c69517f00d9482e6b1c41639f9bdfd5c"
	locator32 = "c69517f00d9482e6b1c41639f9bdfd5cc69517f00d9482e6b1c41639f9bdfd5c"
	sig       = "d9tibmnic9t5y41hg7hkakdcra94akas9ku3rmmj4ag9mritc8ok4p5qzefs78c9pqfhpuftqqzhydbdwfg7u6w6wdxcqpqn4sj4e73e"
)

// inspectCase is one body for one endpoint: wantCode 0 means accepted. wantMsg must equal
// the message, or be contained in it when contains is set.
type inspectCase struct {
	name     string
	body     string
	wantCode int
	wantMsg  string
	contains bool
}

func runCases(t *testing.T, inspect func([]byte) error, cases []inspectCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := inspect([]byte(tc.body))
			if tc.wantCode == 0 {
				if err != nil {
					t.Fatalf("body %q: unexpected error %v", tc.body, err)
				}
				return
			}
			var ierr *inspector.Error
			if !errors.As(err, &ierr) {
				t.Fatalf("body %q: got %v, want *inspector.Error", tc.body, err)
			}
			if ierr.Code != tc.wantCode {
				t.Errorf("body %q: code %d (%q), want %d", tc.body, ierr.Code, ierr.Message, tc.wantCode)
			}
			if tc.contains && !strings.Contains(ierr.Message, tc.wantMsg) || !tc.contains && ierr.Message != tc.wantMsg {
				t.Errorf("body %q: message %q, want %q (contains=%v)", tc.body, ierr.Message, tc.wantMsg, tc.contains)
			}
		})
	}
}

func TestInspectRegister(t *testing.T) {
	runCases(t, func(b []byte) error { _, err := inspector.InspectRegister(b); return err }, []inspectCase{
		// rust-teos tests_failures (VECTORS §4, §7)
		{"empty body", ``, 6, "EOF while parsing a value at line 1 column 0", false},
		{"json string body", `""`, 3, `invalid type: string "", expected struct RegisterRequest at line 1 column 2`, false},
		{"empty object", `{}`, 1, "missing field `user_id`", false},
		{"number user_id", `{"user_id":1}`, 3, "invalid type: integer `1`, expected a hex encoded string at line 1 column 12", false},
		{"odd hex", `{"user_id": "a"}`, 5, "Odd number of digits at line 1 column 15", false},
		{"wrong size", `{"user_id": "aa"}`, 4, "Wrong `user_id` field size. Expected 33, received 1", false},
		{"empty user_id", `{"user_id": ""}`, 2, "`user_id` field is empty", false},
		{"bad hex char", `{"user_id": "` + badCharID + `"}`, 5, "Invalid character 'Z' at position 65", true},
		// accepted: the HTTP layer checks the size only, the curve point is the core's job
		{"valid", `{"user_id": "` + validID + `"}`, 0, "", false},
		{"upper case hex", `{"user_id": "` + strings.ToUpper(validID) + `"}`, 0, "", false},
		{"not a curve point", `{"user_id": "` + prefix05 + `"}`, 0, "", false},
		{"unknown fields ignored", `{"x": [1, {"y": null}], "user_id": "` + validID + `", "z": "\ud800"}`, 0, "", false},
		{"array form", `["` + validID + `"]`, 0, "", false},
		// serde details
		{"32 bytes", `{"user_id": "` + locator32 + `"}`, 4, "Wrong `user_id` field size. Expected 33, received 32", false},
		{"null user_id", `{"user_id": null}`, 3, "invalid type: null, expected a hex encoded string", true},
		{"null body", `null`, 3, "invalid type: null, expected struct RegisterRequest", true},
		{"number body", `12`, 3, "invalid type: integer `12`, expected struct RegisterRequest", true},
		{"keys are case sensitive", `{"USER_ID": "` + validID + `"}`, 1, "missing field `user_id`", false},
		{"duplicate field", `{"user_id": "` + validID + `", "user_id": "` + validID + `"}`, 6, "duplicate field `user_id`", true},
		{"trailing characters", `{"user_id": "` + validID + `"} x`, 6, "trailing characters", true},
		{"truncated", `{"user_id": "` + validID, 6, "EOF while parsing a string", true},
		{"syntax error in ignored value", `{"x": [1,], "user_id": "00"}`, 6, "expected value at line 1 column 10", false},
		{"type error before syntax error", `{"user_id": 1,`, 3, "invalid type", true},
		{"empty array", `[]`, 6, "invalid length 0, expected struct RegisterRequest with 1 element", true},
		{"non-ascii hex", `{"user_id": "é0"}`, 5, "Odd number of digits", true},
		{"latin-1 char in error", `{"user_id": "éaa"}`, 5, "Invalid character 'Ã' at position 0", true},
		{"escaped control char in error", `{"user_id": "\u0001a"}`, 5, `Invalid character '\u{1}' at position 0`, true},
		{"invalid utf-8", "{\"user_id\": \"\xff0\"}", 6, "invalid unicode code point", true},
		{"lone surrogate", `{"user_id": "\udc00"}`, 6, "lone leading surrogate in hex escape", true},
		{"leading zeros", `{"user_id": 01}`, 6, "invalid number", true},
		{"number out of range", `{"user_id": 1e400}`, 6, "number out of range", true},
		{"float user_id", `{"user_id": 1.5}`, 3, "invalid type: floating point `1.5`", true},
		{"multi-line position", "{\n  \"user_id\": 7\n}", 3, "at line 2 column 14", true},
		{"bom", "\ufeff{}", 6, "expected value at line 1 column 1", false},
	})
}

func TestInspectAddAppointment(t *testing.T) {
	appt := func(loc, blob, delay string) string {
		return `{"locator": "` + loc + `", "encrypted_blob": "` + blob + `", "to_self_delay": ` + delay + `}`
	}
	req := func(appointment, signature string) string {
		return `{"appointment": ` + appointment + `, "signature": "` + signature + `"}`
	}
	runCases(t, func(b []byte) error { _, err := inspector.InspectAddAppointment(b); return err }, []inspectCase{
		{"valid", req(appt(locator, "00ff", "42"), sig), 0, "", false},
		{"empty blob", req(appt(locator, "", "0"), sig), 0, "", false},
		{"max delay", req(appt(locator, "aa", "4294967295"), sig), 0, "", false},
		{"only signature (rust test)", `{"signature": "aa"}`, 1, "missing field `appointment`", false},
		{"null appointment", `{"appointment": null, "signature": "aa"}`, 1, "missing field `appointment`", false},
		{"missing appointment before empty signature", `{"signature": ""}`, 1, "missing field `appointment`", false},
		{"missing signature", `{"appointment": ` + appt(locator, "", "1") + `}`, 1, "missing field `signature`", false},
		{"missing to_self_delay", `{"appointment": {"locator": "` + locator + `", "encrypted_blob": ""}, "signature": "x"}`, 1, "missing field `to_self_delay`", false},
		{"missing locator first", `{"appointment": {}, "signature": "x"}`, 1, "missing field `locator`", false},
		{"empty locator", req(appt("", "", "1"), sig), 2, "`locator` field is empty", false},
		{"short locator", req(appt("aa", "", "1"), sig), 4, "Wrong `locator` field size. Expected 16, received 1", false},
		{"long locator", req(appt(locator32, "", "1"), sig), 4, "Wrong `locator` field size. Expected 16, received 32", false},
		{"locator checked before signature", req(appt("", "", "1"), ""), 2, "`locator` field is empty", false},
		{"empty signature", req(appt(locator, "", "1"), ""), 2, "`signature` field is empty", false},
		{"odd blob", req(appt(locator, "abc", "1"), sig), 5, "Odd number of digits", true},
		{"bad blob char", req(appt(locator, "zz", "1"), sig), 5, "Invalid character 'z' at position 0", true},
		{"negative delay", req(appt(locator, "", "-1"), sig), 6, "invalid value: integer `-1`, expected u32", true},
		{"delay too big", req(appt(locator, "", "4294967296"), sig), 6, "invalid value: integer `4294967296`, expected u32", true},
		{"float delay", req(appt(locator, "", "1.5"), sig), 3, "invalid type: floating point `1.5`, expected u32", true},
		{"exponent delay", req(appt(locator, "", "1e3"), sig), 3, "invalid type: floating point `1000.0`, expected u32", true},
		{"negative zero delay", req(appt(locator, "", "-0"), sig), 3, "invalid type: floating point `-0.0`, expected u32", true},
		{"string delay", req(appt(locator, "", `"42"`), sig), 3, `invalid type: string "42", expected u32`, true},
		{"huge delay", req(appt(locator, "", "123456789012345678901234567890"), sig), 3, "invalid type: floating point", true},
		{"appointment as string", `{"appointment": "x", "signature": "y"}`, 3, `invalid type: string "x", expected struct Appointment`, true},
		{"number signature", `{"appointment": ` + appt(locator, "", "1") + `, "signature": 5}`, 3, "invalid type: integer `5`, expected a string", true},
		{"array form", `[["` + locator + `", "", 1], "` + sig + `"]`, 0, "", false},
		{"short array", `[null]`, 6, "invalid length 1, expected struct AddAppointmentRequest with 2 elements", true},
	})
}

func TestInspectGetAppointment(t *testing.T) {
	runCases(t, func(b []byte) error { _, err := inspector.InspectGetAppointment(b); return err }, []inspectCase{
		{"valid", `{"locator": "` + locator + `", "signature": "` + sig + `"}`, 0, "", false},
		{"missing locator", `{"signature": "x"}`, 1, "missing field `locator`", false},
		{"missing signature", `{"locator": "` + locator + `"}`, 1, "missing field `signature`", false},
		{"empty locator", `{"locator": "", "signature": "x"}`, 2, "`locator` field is empty", false},
		{"wrong size", `{"locator": "` + locator32 + `", "signature": "x"}`, 4, "Wrong `locator` field size. Expected 16, received 32", false},
		{"empty signature", `{"locator": "` + locator + `", "signature": ""}`, 2, "`signature` field is empty", false},
		{"odd locator", `{"locator": "abc", "signature": "x"}`, 5, "Odd number of digits", true},
		{"number locator", `{"locator": 3, "signature": "x"}`, 3, "invalid type", true},
	})
}

func TestInspectGetSubscriptionInfo(t *testing.T) {
	runCases(t, func(b []byte) error { _, err := inspector.InspectGetSubscriptionInfo(b); return err }, []inspectCase{
		{"valid", `{"signature": "` + sig + `"}`, 0, "", false},
		{"missing signature", `{}`, 1, "missing field `signature`", false},
		{"empty signature", `{"signature": ""}`, 2, "`signature` field is empty", false},
		{"number signature", `{"signature": 1}`, 3, "invalid type: integer `1`, expected a string at line 1 column 15", false},
		{"escaped signature", `{"signature": "\u0061b"}`, 0, "", false},
		{"empty body", ``, 6, "EOF while parsing a value at line 1 column 0", false},
	})
}

func TestInspectValues(t *testing.T) {
	reg, err := inspector.InspectRegister([]byte(`{"user_id": "` + strings.ToUpper(validID) + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(reg.UserID[:]); got != validID {
		t.Errorf("user_id %s, want %s", got, validID)
	}

	add, err := inspector.InspectAddAppointment([]byte(`{"signature": "s\"ig", "appointment":
		{"to_self_delay": 42, "encrypted_blob": "00FF", "locator": "` + locator + `"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := teos.Appointment{Locator: mustLocator(t, locator), EncryptedBlob: []byte{0x00, 0xff}, ToSelfDelay: 42}
	if add.Appointment.Locator != want.Locator || !bytes.Equal(add.Appointment.EncryptedBlob, want.EncryptedBlob) ||
		add.Appointment.ToSelfDelay != want.ToSelfDelay || add.Signature != `s"ig` {
		t.Errorf("got %+v", add)
	}

	get, err := inspector.InspectGetAppointment([]byte(`{"locator": "` + locator + `", "signature": "abc"}`))
	if err != nil {
		t.Fatal(err)
	}
	if get.Locator != mustLocator(t, locator) || get.Signature != "abc" {
		t.Errorf("got %+v", get)
	}
}

func TestErrorsIs(t *testing.T) {
	for _, tc := range []struct {
		body string
		want error
	}{
		{`{}`, inspector.ErrMissingField},
		{`{"user_id": ""}`, inspector.ErrEmptyField},
		{`1`, inspector.ErrWrongFieldType},
		{`{"user_id": "aa"}`, inspector.ErrWrongFieldSize},
		{`{"user_id": "a"}`, inspector.ErrWrongFieldFormat},
		{`{`, inspector.ErrInvalidRequestFormat},
	} {
		_, err := inspector.InspectRegister([]byte(tc.body))
		if !errors.Is(err, tc.want) {
			t.Errorf("InspectRegister(%q) = %v, want errors.Is %v", tc.body, err, tc.want)
		}
		if errors.Is(err, inspector.ErrInvalidRequestFormat) && tc.want != inspector.ErrInvalidRequestFormat {
			t.Errorf("InspectRegister(%q) matches another code's sentinel", tc.body)
		}
	}
}

func TestCheckHelpers(t *testing.T) {
	if _, err := inspector.CheckLocator(make([]byte, 15)); !errors.Is(err, inspector.ErrWrongFieldSize) {
		t.Errorf("CheckLocator(15 bytes) = %v", err)
	}
	if _, err := inspector.CheckLocator(nil); !errors.Is(err, inspector.ErrEmptyField) {
		t.Errorf("CheckLocator(nil) = %v", err)
	}
	if _, err := inspector.CheckUserID(make([]byte, 34)); !errors.Is(err, inspector.ErrWrongFieldSize) {
		t.Errorf("CheckUserID(34 bytes) = %v", err)
	}
	if err := inspector.CheckSignature(""); !errors.Is(err, inspector.ErrEmptyField) {
		t.Errorf("CheckSignature(\"\") = %v", err)
	}
	if err := inspector.CheckSignature("x"); err != nil {
		t.Errorf("CheckSignature(\"x\") = %v", err)
	}
}

func mustLocator(t *testing.T, s string) teos.Locator {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := teos.LocatorFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
