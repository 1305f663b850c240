package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/pkg/client"
)

// TestUploadResumeAfterSubscriptionEnded: receipts journaled by teos-client upload are only
// trusted while the subscription they were given under lasts. Once it expired, a resumed
// upload says the subscription ended instead of reporting them accepted; renewed in time,
// the tower still holds them and nothing is sent again; once the tower deleted the user and
// a new registration started another period, they are sent again and held. Before, every
// run after the first printed all items accepted and sent nothing, while the tower held none.
func TestUploadResumeAfterSubscriptionEnded(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	const delta = 5
	tw := newTower(t, node, "subscription_duration = 20\nexpiry_delta = 5\n")
	tw.start()
	bin, err := teosClientBin()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "client")
	cli := func(args ...string) (int, string, string) {
		cmd := exec.CommandContext(t.Context(), bin, append([]string{"--datadir", dataDir, "--tower", tw.apiURL}, args...)...)
		btcdtest.DieWithParent(cmd, syscall.SIGKILL)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	type summary struct {
		Accepted, Failed, Resumed, Stale, Sent int
	}
	upload := func(file string) summary {
		t.Helper()
		code, stdout, stderr := cli("upload", "--file", file)
		var s summary
		if code != 0 || json.Unmarshal([]byte(stdout), &s) != nil {
			t.Fatalf("upload: exit %d, stdout %s, stderr %s", code, stdout, stderr)
		}
		return s
	}
	uploadRefused := func(file string) {
		t.Helper()
		code, stdout, stderr := cli("upload", "--file", file)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "subscription") || !strings.Contains(stderr, "has ended") {
			t.Fatalf("upload after the subscription ended: exit %d, stdout %s, stderr %s", code, stdout, stderr)
		}
	}
	register := func() uint32 {
		t.Helper()
		code, stdout, stderr := cli("--towerid", tw.id.String(), "register")
		var r struct {
			SubscriptionExpiry uint32 `json:"subscription_expiry"`
		}
		if code != 0 || json.Unmarshal([]byte(stdout), &r) != nil {
			t.Fatalf("register: exit %d, stdout %s, stderr %s", code, stdout, stderr)
		}
		return r.SubscriptionExpiry
	}
	firstExpiry := register()
	lib := client.New(tw.apiURL, tw.id, clientUserKey(t, dataDir), client.WithRetry(0, 0))
	held := func() int {
		t.Helper()
		info, err := lib.GetSubscriptionInfo(t.Context())
		if err != nil {
			t.Fatalf("get_subscription_info: %v", err)
		}
		return len(info.Locators)
	}
	subscriptionError := func(want string) func() bool {
		return func() bool {
			_, err := lib.GetSubscriptionInfo(t.Context())
			return err != nil && strings.Contains(err.Error(), want)
		}
	}

	file, appts := penaltyFile(t, 5)
	if s := upload(file); s.Accepted != len(appts) || s.Sent != len(appts) {
		t.Fatalf("first upload: %+v", s)
	}

	// Expired, not yet deleted: the journal is not trusted; renewed in time, it is again.
	exp := firstExpiry
	node.Generate(t, exp-c.tip(t))
	waitFor(t, "subscription expired", subscriptionError("expired"))
	uploadRefused(file)
	exp = register()
	if s := upload(file); s.Accepted != len(appts) || s.Sent != 0 || s.Resumed != len(appts) {
		t.Fatalf("upload after a renewal in time: %+v, want nothing sent again", s)
	}
	if n := held(); n != len(appts) {
		t.Fatalf("tower holds %d appointments after the renewal, want %d", n, len(appts))
	}

	// Deleted by the tower, then a new registration: everything is sent again.
	node.Generate(t, exp+delta-c.tip(t))
	waitFor(t, "user deleted", subscriptionError("not found"))
	uploadRefused(file)
	register()
	if s := upload(file); s.Accepted != len(appts) || s.Sent != len(appts) || s.Stale != len(appts) {
		t.Fatalf("upload in a new subscription period: %+v, want all %d sent again", s, len(appts))
	}
	if n := held(); n != len(appts) {
		t.Fatalf("tower holds %d appointments in the new period, want %d", n, len(appts))
	}
	tw.stop()
}
