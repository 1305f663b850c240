package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// pluginVerdict is what the CLN watchtower-client plugin (rust-teos watchtower-plugin) does with
// one add_appointment exchange: on the first send (on_commitment_revocation in src/main.rs) or
// in its retrier (Retrier::run in src/retrier.rs). net/http.rs request() maps a send error to
// ConnectionError only when reqwest's is_connect() or is_timeout(); any other send error (the
// server closing or resetting the connection once it was established) is Unexpected, and a body
// that is neither a receipt nor an {"error", "error_code"} is a DeserializeError.
type pluginVerdict string

const (
	// verdictAccepted: the body is a receipt signed by the tower; the appointment is protected.
	verdictAccepted pluginVerdict = "accepted"
	// verdictPending: ConnectionError (the connect failed; the plugin sets no timeout): kept
	// pending, the tower marked unreachable, and the retrier sends it again after a backoff.
	verdictPending pluginVerdict = "pending"
	// verdictSubscription: an error body with error_code 7: kept pending, the tower's status
	// becomes SubscriptionError, and the retrier's next run re-registers before sending again.
	verdictSubscription pluginVerdict = "pending (subscription error)"
	// verdictInvalid: an error body with any other error_code, HTTP status ignored; filed as
	// invalid and never sent again.
	verdictInvalid pluginVerdict = "invalid"
	// verdictDropped: Unexpected or DeserializeError on the first send: neither pending nor
	// invalid, the appointment is lost for that tower.
	verdictDropped pluginVerdict = "dropped"
	// verdictRetryAgain: Unexpected or DeserializeError in the retrier: left pending, and the
	// run's loop sends it again.
	verdictRetryAgain pluginVerdict = "pending (sent again)"
	// verdictMisbehaving: a receipt not signed by the tower; the tower is flagged.
	verdictMisbehaving pluginVerdict = "misbehaving"
)

// keptPending reports whether v leaves the appointment pending, to be sent again.
func (v pluginVerdict) keptPending() bool {
	return v == verdictPending || v == verdictSubscription || v == verdictRetryAgain
}

// The plugin's errors::INVALID_SIGNATURE_OR_SUBSCRIPTION_ERROR.
const pluginSubscriptionError = 7

// pluginDecide applies the first send's decision table (on_commitment_revocation) to an
// add_appointment exchange: err is the transport's error (nil if a response arrived), body the
// response body. The HTTP status plays no part: the plugin decodes the body as a receipt, else
// as {"error", "error_code"}.
func pluginDecide(towerID teos.UserID, userSig string, body []byte, err error) pluginVerdict {
	return pluginClassify(towerID, userSig, body, err, verdictDropped)
}

// pluginRetrierDecide is pluginDecide for the retrier (Retrier::run): the same table, except
// that Unexpected and DeserializeError leave the appointment pending.
func pluginRetrierDecide(towerID teos.UserID, userSig string, body []byte, err error) pluginVerdict {
	return pluginClassify(towerID, userSig, body, err, verdictRetryAgain)
}

// pluginClassify is the table both paths share; otherwise is the verdict for Unexpected and
// DeserializeError, where they differ.
func pluginClassify(towerID teos.UserID, userSig string, body []byte, err error, otherwise pluginVerdict) pluginVerdict {
	if err != nil {
		if pluginConnectionError(err) {
			return verdictPending
		}
		return otherwise // Unexpected
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
		return otherwise // DeserializeError
	}
	if *apiErr.ErrorCode == pluginSubscriptionError {
		return verdictSubscription
	}
	return verdictInvalid
}

// pluginConnectionError is reqwest's is_connect() || is_timeout() for a Go transport error. The
// plugin sets no timeout, so only a failed connect counts; a connection closed or reset after
// it was established is not one.
func pluginConnectionError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// pluginPost sends body to path as the plugin does: a fresh client per request (no connection
// reused, hence none retried by the transport), JSON, no client timeout (ctx bounds it).
func pluginPost(ctx context.Context, url, path string, body []byte) ([]byte, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// pluginSend sends a as the plugin's first send does and returns its verdict and how long the
// answer took.
func pluginSend(ctx context.Context, url string, towerID teos.UserID, u *user, a teos.Appointment) (pluginVerdict, time.Duration) {
	req := u.addRequest(a)
	b, _ := json.Marshal(req)
	start := time.Now()
	body, err := pluginPost(ctx, url, "/add_appointment", b)
	return pluginDecide(towerID, req["signature"].(string), body, err), time.Since(start)
}

// pluginTower is the plugin's record of one tower, as far as its retrier uses it.
type pluginTower struct {
	id                teos.UserID
	url               string
	slots, expiry     uint32 // from the last registration receipt (and slots from each add receipt)
	subscriptionError bool   // TowerStatus::SubscriptionError: the next run re-registers first
}

// pluginRegistered is the plugin's record of a tower after registertower.
func pluginRegistered(tw *tower, r registerResp) *pluginTower {
	return &pluginTower{id: tw.id, url: tw.apiURL, slots: r.AvailableSlots, expiry: r.SubscriptionExpiry}
}

// note records a first send's verdict in the tower's status.
func (pt *pluginTower) note(v pluginVerdict) {
	if v == verdictSubscription {
		pt.subscriptionError = true
	}
}

// errRetrierGaveUp is a permanent failure of a retrier run: the retrier stops for good.
var errRetrierGaveUp = errors.New("retrier gave up for good")

// retry is one retrier run for a pending appointment (Retrier::run): with the tower in
// SubscriptionError it re-registers first (http::register, then add_update_tower, which refuses
// a receipt whose expiry is not higher or whose slots are not more than the stored ones: a
// permanent failure); a failed registration is transient (verdictPending). Then it sends a and
// decides as the retrier does.
func (pt *pluginTower) retry(ctx context.Context, u *user, a teos.Appointment) (pluginVerdict, error) {
	if pt.subscriptionError {
		b, _ := json.Marshal(map[string]string{"user_id": u.id.String()})
		body, err := pluginPost(ctx, pt.url, "/register", b)
		var r registerResp
		if err != nil || json.Unmarshal(body, &r) != nil || r.SubscriptionSignature == "" {
			return verdictPending, nil // "Cannot renew registration with tower": transient
		}
		rec := teos.RegistrationReceipt{UserID: u.id, AvailableSlots: r.AvailableSlots, SubscriptionStart: r.SubscriptionStart, SubscriptionExpiry: r.SubscriptionExpiry}
		if !wtcrypto.VerifySignature(rec.SignedBytes(), r.SubscriptionSignature, pt.id) {
			return "", fmt.Errorf("%w: registration receipt contains bad signature", errRetrierGaveUp)
		}
		if r.SubscriptionExpiry <= pt.expiry {
			return "", fmt.Errorf("%w: registration expiry %d not higher than %d", errRetrierGaveUp, r.SubscriptionExpiry, pt.expiry)
		}
		if r.AvailableSlots <= pt.slots {
			return "", fmt.Errorf("%w: registration slots %d not more than %d", errRetrierGaveUp, r.AvailableSlots, pt.slots)
		}
		// The status stays SubscriptionError until a run succeeds: a run that fails later
		// re-registers again.
		pt.slots, pt.expiry = r.AvailableSlots, r.SubscriptionExpiry
	}
	req := u.addRequest(a)
	b, _ := json.Marshal(req)
	body, err := pluginPost(ctx, pt.url, "/add_appointment", b)
	v := pluginRetrierDecide(pt.id, req["signature"].(string), body, err)
	switch v {
	case verdictAccepted:
		var r addResp
		_ = json.Unmarshal(body, &r)
		pt.slots = r.AvailableSlots
		pt.subscriptionError = false // the run succeeded: Reachable
	case verdictSubscription:
		pt.subscriptionError = true
	}
	if v == verdictMisbehaving {
		return v, fmt.Errorf("%w: tower misbehaving", errRetrierGaveUp)
	}
	return v, nil
}

// TestPluginDecisionTable pins both decision tables on crafted answers, so the fault tests
// judge the tower as the plugin would.
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
		name         string
		body         []byte
		err          error
		first, retry pluginVerdict
	}{
		{"receipt", receipt(good), nil, verdictAccepted, verdictAccepted},
		{"receipt of another key", receipt(wtcrypto.SignMessage(teos.AppointmentReceiptBytes(sig, 120), newUser(t).key)), nil, verdictMisbehaving, verdictMisbehaving},
		{"subscription error", []byte(`{"error":"Invalid signature or user does not have enough slots available","error_code":7}`), nil, verdictSubscription, verdictSubscription},
		{"503 / 32", []byte(`{"error":"Service currently unavailable","error_code":32}`), nil, verdictInvalid, verdictInvalid},
		{"400 / 255", []byte(`{"error":"internal error","error_code":255}`), nil, verdictInvalid, verdictInvalid},
		{"429 / 8", []byte(`{"error":"rate limited","error_code":8}`), nil, verdictInvalid, verdictInvalid},
		{"error_code over u8", []byte(`{"error":"x","error_code":256}`), nil, verdictDropped, verdictRetryAgain},
		{"plain text", []byte("HTTP method not allowed"), nil, verdictDropped, verdictRetryAgain},
		{"empty body", nil, nil, verdictDropped, verdictRetryAgain},
		{"connection refused", nil, dialErr, verdictPending, verdictPending},
		{"connection cut", nil, cutErr, verdictDropped, verdictRetryAgain},
		{"connection closed before the answer", nil, io.ErrUnexpectedEOF, verdictDropped, verdictRetryAgain},
	} {
		if got := pluginDecide(tower.id, sig, tc.body, tc.err); got != tc.first {
			t.Errorf("%s, first send: %s, want %s", tc.name, got, tc.first)
		}
		if got := pluginRetrierDecide(tower.id, sig, tc.body, tc.err); got != tc.retry {
			t.Errorf("%s, retrier: %s, want %s", tc.name, got, tc.retry)
		}
	}
}
