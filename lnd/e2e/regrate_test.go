package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/brontide"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lnwallet/chainfee"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtwire"

	"github.com/teos-go/teos/internal/btcdtest"
)

// dialFrom dials addr from the loopback address from.
func dialFrom(from string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		return d.DialContext(ctx, network, addr)
	}
}

// registerFrom registers a fresh user over the teos HTTP API from the loopback address from
// and returns the HTTP status and error_code.
func registerFrom(t *testing.T, tw *teosd, from string) (int, int) {
	t.Helper()
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"user_id": hex.EncodeToString(k.PubKey().SerializeCompressed())})
	c := &http.Client{Transport: &http.Transport{DialContext: dialFrom(from)}, Timeout: 30 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Post("http://"+tw.api+"/register", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Code int `json:"error_code"`
	}
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e.Code
}

// createSessionFrom opens an lnd client session (anchor, altruist) with lnd's brontide and
// wtwire from the loopback address from, and returns the tower's reply code.
func createSessionFrom(t *testing.T, tw *teosd, from string) wtwire.ErrorCode {
	t.Helper()
	raw, err := hex.DecodeString(tw.id)
	if err != nil {
		t.Fatal(err)
	}
	towerKey, err := btcec.ParsePubKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	key, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.ResolveTCPAddr("tcp", tw.lndAddr)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return dialFrom(from)(ctx, network, addr)
	}
	conn, err := brontide.Dial(&keychain.PrivKeyECDH{PrivKey: key}, &lnwire.NetAddress{IdentityKey: towerKey, Address: tcp}, 10*time.Second, dial)
	if err != nil {
		t.Fatalf("dial the lnd port: %v", err)
	}
	defer conn.Close()
	send := func(m wtwire.Message) {
		var buf bytes.Buffer
		if _, err := wtwire.WriteMessage(&buf, m, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() wtwire.Message {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		b, err := conn.ReadNextMessage()
		if err != nil {
			t.Fatalf("read reply: %v", err)
		}
		m, err := wtwire.ReadMessage(bytes.NewReader(b), 0)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	send(wtwire.NewInitMessage(lnwire.NewRawFeatureVector(wtwire.AltruistSessionsRequired), *chaincfg.RegressionNetParams.GenesisHash))
	if _, ok := recv().(*wtwire.Init); !ok {
		t.Fatal("no Init from the tower")
	}
	send(&wtwire.CreateSession{BlobType: blob.TypeAltruistAnchorCommit, MaxUpdates: 5, SweepFeeRate: chainfee.SatPerKWeight(2500)})
	r, ok := recv().(*wtwire.CreateSessionReply)
	if !ok {
		t.Fatal("no CreateSessionReply")
	}
	return r.Code
}

// TestRegistrationRateSharedAcrossPorts: with registration_rate = 1, an address that
// registered over the teos HTTP API has no new lnd session left that minute (code 40, counted
// under registration_rate), and one that opened an lnd session has no registration left
// (400 / 65). Before, each port had a budget of its own and an address got twice the rate.
func TestRegistrationRateSharedAcrossPorts(t *testing.T) {
	node := btcdtest.Start(t)
	node.Generate(t, 110)
	tw := startTeosd(t, node, "registration_rate = 1\n")

	if status, _ := registerFrom(t, tw, "127.0.0.1"); status != http.StatusOK {
		t.Fatalf("first registration from 127.0.0.1: %d", status)
	}
	if code := createSessionFrom(t, tw, "127.0.0.1"); code != wtwire.CodeTemporaryFailure {
		t.Fatalf("lnd session from 127.0.0.1 after its registration: code %d, want %d", code, wtwire.CodeTemporaryFailure)
	}
	if code := createSessionFrom(t, tw, "127.0.0.2"); code != wtwire.CodeOK {
		t.Fatalf("first lnd session from 127.0.0.2: code %d", code)
	}
	if status, code := registerFrom(t, tw, "127.0.0.2"); status != http.StatusBadRequest || code != 65 {
		t.Fatalf("registration from 127.0.0.2 after its lnd session: %d / %d, want 400 / 65", status, code)
	}
	if status, _ := registerFrom(t, tw, "127.0.0.3"); status != http.StatusOK {
		t.Fatalf("registration from an address that spent nothing: %d", status)
	}
	for name, want := range map[string]float64{
		`teos_lnd_sessions_refused_total{reason="registration_rate"}`: 1,
		`teos_lnd_sessions_accepted_total`:                            1,
	} {
		if got := tw.metric(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	refused := tw.metric(t, `teos_http_requests_total{code="400",endpoint="register",error_code="65"}`)
	if refused != 1 {
		t.Errorf("%v registrations refused over HTTP, want 1", refused)
	}
}
