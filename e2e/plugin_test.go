package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// pluginVerdict is what the CLN watchtower-client plugin (rust-teos watchtower-plugin,
// on_commitment_revocation in src/main.rs, send_appointment/post_request/process_post_response
// in src/net/http.rs) does with one add_appointment exchange.
type pluginVerdict string

const (
	// verdictAccepted: the body is a receipt signed by the tower; the appointment is protected.
	verdictAccepted pluginVerdict = "accepted"
	// verdictPending: kept and retried later: the connection failed or timed out, or the
	// answer was an error with error_code 7 (subscription problem).
	verdictPending pluginVerdict = "pending"
	// verdictInvalid: an error body with any other error_code, HTTP status ignored; filed as
	// invalid and never sent again.
	verdictInvalid pluginVerdict = "invalid"
	// verdictDropped: any other failure (connection cut after the request was sent, a body
	// that is neither a receipt nor an error): logged and forgotten.
	verdictDropped pluginVerdict = "dropped"
	// verdictMisbehaving: a receipt not signed by the tower; the tower is flagged.
	verdictMisbehaving pluginVerdict = "misbehaving"
)

// The plugin's errors::INVALID_SIGNATURE_OR_SUBSCRIPTION_ERROR.
const pluginSubscriptionError = 7

// pluginDecide applies the plugin's decision table to an add_appointment exchange: err is the
// transport's error (nil if a response arrived), body the response body. The HTTP status plays
// no part: the plugin decodes the body as a receipt, else as {"error", "error_code"}.
func pluginDecide(towerID teos.UserID, userSig string, body []byte, err error) pluginVerdict {
	if err != nil {
		// reqwest's is_connect() || is_timeout(): ConnectionError, kept as pending. The plugin
		// sets no timeout, so only a failed connect counts here; a connection cut afterwards
		// is Unexpected and dropped.
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return verdictPending
		}
		return verdictDropped
	}
	// serde untagged: the receipt variant first; its fields are all required.
	var receipt struct {
		Locator            *string `json:"locator"`
		StartBlock         *uint32 `json:"start_block"`
		Signature          *string `json:"signature"`
		AvailableSlots     *uint32 `json:"available_slots"`
		SubscriptionExpiry *uint32 `json:"subscription_expiry"`
	}
	if json.Unmarshal(body, &receipt) == nil && receipt.Locator != nil && receipt.StartBlock != nil &&
		receipt.Signature != nil && receipt.AvailableSlots != nil && receipt.SubscriptionExpiry != nil {
		msg := teos.AppointmentReceiptBytes(userSig, *receipt.StartBlock)
		if wtcrypto.VerifySignature(msg, *receipt.Signature, towerID) {
			return verdictAccepted
		}
		return verdictMisbehaving
	}
	var apiErr struct {
		Error     *string `json:"error"`
		ErrorCode *uint8  `json:"error_code"` // u8 in the plugin: anything else does not decode
	}
	if json.Unmarshal(body, &apiErr) != nil || apiErr.Error == nil || apiErr.ErrorCode == nil {
		return verdictDropped // DeserializeError
	}
	if *apiErr.ErrorCode == pluginSubscriptionError {
		return verdictPending
	}
	return verdictInvalid
}

// pluginSend sends a as the plugin does (POST, JSON, no client timeout: the test's ctx bounds
// it) and returns the plugin's verdict and how long the answer took.
func pluginSend(ctx context.Context, url string, towerID teos.UserID, u *user, a teos.Appointment) (pluginVerdict, time.Duration) {
	req := u.addRequest(a)
	b, _ := json.Marshal(req)
	start := time.Now()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/add_appointment", bytes.NewReader(b))
	if err != nil {
		return verdictDropped, 0
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hreq)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	return pluginDecide(towerID, req["signature"].(string), body, err), time.Since(start)
}

// TestPluginDecisionTable pins the decision table on crafted answers, so the fault tests
// below judge the tower as the plugin would.
func TestPluginDecisionTable(t *testing.T) {
	tower := newUser(t) // stands in for the tower's key
	sig := "user signature"
	good := wtcrypto.SignMessage(teos.AppointmentReceiptBytes(sig, 120), tower.key)
	receipt := func(signature string) []byte {
		b, _ := json.Marshal(map[string]any{"locator": "00", "start_block": 120, "signature": signature,
			"available_slots": 9, "subscription_expiry": 4000})
		return b
	}
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cutErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for _, tc := range []struct {
		name string
		body []byte
		err  error
		want pluginVerdict
	}{
		{"receipt", receipt(good), nil, verdictAccepted},
		{"receipt of another key", receipt(wtcrypto.SignMessage(teos.AppointmentReceiptBytes(sig, 120), newUser(t).key)), nil, verdictMisbehaving},
		{"subscription error", []byte(`{"error":"Invalid signature or user does not have enough slots available","error_code":7}`), nil, verdictPending},
		{"503 / 32", []byte(`{"error":"Service currently unavailable","error_code":32}`), nil, verdictInvalid},
		{"400 / 255", []byte(`{"error":"internal error","error_code":255}`), nil, verdictInvalid},
		{"429 / 8", []byte(`{"error":"rate limited","error_code":8}`), nil, verdictInvalid},
		{"error_code over u8", []byte(`{"error":"x","error_code":256}`), nil, verdictDropped},
		{"plain text", []byte("HTTP method not allowed"), nil, verdictDropped},
		{"empty body", nil, nil, verdictDropped},
		{"connection refused", nil, dialErr, verdictPending},
		{"connection cut", nil, cutErr, verdictDropped},
	} {
		if got := pluginDecide(tower.id, sig, tc.body, tc.err); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
