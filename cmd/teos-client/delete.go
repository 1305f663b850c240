package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/teos-go/teos/internal/durable"
	"github.com/teos-go/teos/pkg/client"
	"github.com/teos-go/teos/pkg/teos"
)

// deletionsDir holds one record per deletion asked of a tower, written before the request:
// a deletion whose answer was lost (and the appointment then not found on a later try) is
// known to be this user's own, not an unknown locator.
const deletionsDir = "deletions"

// deletionRecord is <datadir>/deletions/<tower id>-<locator>.json.
type deletionRecord struct {
	Locator     string `json:"locator"`
	TowerID     string `json:"tower_id"`
	URL         string `json:"url"`
	RequestedAt string `json:"requested_at"`
	// Receipt once the tower answered; absent while the outcome is unknown or if the
	// answer was lost.
	Receipt *deletionJSON `json:"receipt,omitempty"`
}

type deletionJSON struct {
	Locator            string `json:"locator"`
	DeletionBlock      uint32 `json:"deletion_block"`
	Signature          string `json:"signature"`
	UserSignature      string `json:"user_signature"`
	AvailableSlots     uint32 `json:"available_slots"`
	SubscriptionExpiry uint32 `json:"subscription_expiry"`
}

func readDeletion(path string) (*deletionRecord, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read deletion record: %w", err)
	}
	var r deletionRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("deletion record %s: %w", path, err)
	}
	return &r, nil
}

func writeDeletion(path string, r *deletionRecord) error {
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := durable.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write deletion record: %w", err)
	}
	return nil
}

// deleteAppointment asks the tower to forget one of the user's appointments (after a channel
// closed) and give its slots back; the deletion receipt is verified against the tower id.
// When the answer to a try that reached the tower was lost, in this run or an earlier one,
// and the tower now finds nothing, the appointment is reported deleted without a receipt.
func (a *app) deleteAppointment(ctx context.Context, args []string) error {
	loc, err := locatorArg("delete", args)
	if err != nil {
		return err
	}
	t, dir, _, err := a.connect(ctx, false)
	if err != nil {
		return err
	}
	if _, err := durable.MkdirAll(filepath.Join(dir, deletionsDir), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", deletionsDir, err)
	}
	path := filepath.Join(dir, deletionsDir, t.ID().String()+"-"+loc.String()+".json")
	rec, err := readDeletion(path)
	if err != nil {
		return err
	}
	pendingBefore := rec != nil && rec.Receipt == nil
	if rec == nil {
		rec = &deletionRecord{Locator: loc.String(), TowerID: t.ID().String(), URL: t.URL(), RequestedAt: time.Now().UTC().Format(time.RFC3339)}
		if err := writeDeletion(path, rec); err != nil {
			return err
		}
	}
	r, err := t.DeleteAppointment(ctx, loc)
	var apiErr *client.APIError
	notFound := errors.As(err, &apiErr) && apiErr.Code == teos.ErrCodeAppointmentNotFound
	switch {
	case errors.Is(err, client.ErrNoDeletionReceipt), notFound && pendingBefore:
		return a.printJSON(struct {
			Locator string `json:"locator"`
			Deleted bool   `json:"deleted"`
			Receipt bool   `json:"receipt"`
			Message string `json:"message"`
		}{loc.String(), true, false, "the tower no longer holds this appointment, but the answer to an earlier request to delete it (" +
			rec.RequestedAt + ") was lost: there is no deletion receipt"})
	case err != nil:
		// Refused by the tower, or never sent: nothing deleted, so leave nothing behind. Kept
		// when the outcome is unknown (no answer, a 5xx) for a later run to recognise. An
		// appointment refused as triggered is still there: no earlier try deleted it either.
		refused := errors.As(err, &apiErr) && apiErr.HTTPStatus/100 == 4 || errors.Is(err, client.ErrNoDeleteExtension) ||
			errors.Is(err, client.ErrOnionNeedsProxy)
		triggered := errors.As(err, &apiErr) && apiErr.Code == teos.ErrCodeAppointmentAlreadyTriggered
		if rec.Receipt == nil && (refused && !pendingBefore || triggered) {
			os.Remove(path)
		}
		return err
	}
	out := deletionJSON{r.Locator.String(), r.DeletionBlock, r.TowerSignature, r.UserSignature, r.AvailableSlots, r.SubscriptionExpiry}
	rec.Receipt = &out
	if werr := writeDeletion(path, rec); werr != nil {
		fmt.Fprintf(a.stderr, "teos-client: warning: deletion receipt not saved: %v\n", werr)
	}
	return a.printJSON(out)
}
