package pgstore_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/pkg/teos"
)

// vanishedFixture is pgstore's, its Gone instance behind a pgtest.SilentProxy.
func vanishedFixture(t *testing.T) (*pgstore.VanishedFixture, *pgtest.SilentProxy) {
	var proxy *pgtest.SilentProxy
	f := pgstore.NewVanishedFixture(t, func(t testing.TB, direct string) string {
		var u string
		u, proxy = pgtest.BehindSilentProxy(t, direct)
		return u
	})
	return f, proxy
}

// TestVanishedAdderStallsNoOne: an instance vanishes (machine lost, network cut) in the middle
// of an add, holding the adds' shared lock. The leader's publication of the next block, which
// takes that lock exclusively, and every other instance's adds, which queue behind the waiting
// publication, must not wait for the server's session-wide idle timeout (30 s): the vanished
// add's own transaction is ended sooner, and the block is published at its first try, within
// its lock wait. The adds still see the published block afterwards.
func TestVanishedAdderStallsNoOne(t *testing.T) {
	f, proxy := vanishedFixture(t)
	leader, other, gone := f.Leader, f.Other, f.Gone
	goneUser, user := newUserIn(t, gone, 1), newUserIn(t, other, 2)

	inPolicy := make(chan struct{})
	f.Go(func() {
		a := &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{9}, EncryptedBlob: []byte{9}}, UserID: goneUser}
		_, _ = gone.UpsertAppointment(a, func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) {
			close(inPolicy) // the adds' lock is held
			<-f.Release
			return u, nil
		})
	})
	<-inPolicy
	proxy.Silence()
	vanished := time.Now()

	// Another instance's adds go on meanwhile, each timed.
	stop := make(chan struct{})
	var (
		adds    int
		slowest time.Duration
		addErr  error
		addWG   sync.WaitGroup
	)
	addWG.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			var loc teos.Locator
			loc[0] = 0xee
			binary.BigEndian.PutUint32(loc[1:], uint32(i))
			a := &store.Appointment{Appointment: teos.Appointment{Locator: loc, EncryptedBlob: []byte{1}}, UserID: user}
			start := time.Now()
			res, err := other.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a, Policy: free,
				HandOver: func() *store.HandOver { return nil }}})
			if err == nil {
				err = res[0].Err
			}
			if err != nil {
				addErr = fmt.Errorf("add %d: %w", i, err)
				return
			}
			adds++
			slowest = max(slowest, time.Since(start))
		}
	})

	// The leader tries the block as its chain polls would, until it is published.
	block := minedBlock(nil, 1, 2)
	mined := leader.MinedTxs(6)
	tries := 0
	for {
		tries++
		err := mined.BlockConnected(context.Background(), block, 101)
		if err == nil {
			break
		}
		if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "55P03" {
			t.Fatalf("publication: %v", err)
		}
		if time.Since(vanished) > 2*time.Minute {
			t.Fatalf("the block is still not published after %d tries", tries)
		}
	}
	published := time.Since(vanished)
	close(stop)
	addWG.Wait()
	t.Logf("an add's instance vanished: block published %v later, at try %d; %d adds of another instance meanwhile, the slowest took %v",
		published.Round(time.Millisecond), tries, adds, slowest.Round(time.Millisecond))
	if addErr != nil {
		t.Fatalf("another instance's add while one vanished: %v", addErr)
	}
	if tries != 1 {
		t.Fatalf("the publication gave up %d times on the vanished add, each time holding every instance's adds", tries-1)
	}
	if _, res := addLate(t, other, user, locatorOf(block.Transactions[0])); !res.Queued {
		t.Fatal("an add after the publication did not see the published block")
	}
}

// TestVanishedRegistrationStallsNoOne: an instance vanishes in the middle of a registration
// (UpdateUser), holding the user's row lock. Another instance's add for that user waits for
// the row holding the adds' shared lock, so the leader's publication, and every add queued
// behind it, waited for the vanished session's end: the session-wide idle timeout (30 s), as
// the vanished add did. The registration's transaction is ended as soon: the block is
// published at its first try and the add goes through.
func TestVanishedRegistrationStallsNoOne(t *testing.T) {
	f, proxy := vanishedFixture(t)
	leader, other, gone := f.Leader, f.Other, f.Gone
	user := newUserIn(t, other, 1)

	inPolicy := make(chan struct{})
	f.Go(func() {
		_, _ = gone.UpdateUser(user, func(u store.UserInfo, _ bool) (store.UserInfo, error) {
			close(inPolicy) // the user's row is locked
			<-f.Release
			return u, nil
		})
	})
	<-inPolicy
	proxy.Silence()

	addDone := make(chan error, 1)
	go func() {
		a := &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{7}, EncryptedBlob: []byte{1}}, UserID: user}
		res, err := other.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a, Policy: free,
			HandOver: func() *store.HandOver { return nil }}})
		if err == nil {
			err = res[0].Err
		}
		addDone <- err
	}()
	// The add waits for the user's row (or has already gone through, once the fix ended the
	// registration); the bound only keeps a failing test from hanging.
	for deadline := time.Now().Add(20 * time.Second); ; {
		var waiting int
		if err := leader.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 || len(addDone) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	block := minedBlock(nil, 1, 2)
	mined := leader.MinedTxs(6)
	tries := 0
	for {
		tries++
		err := mined.BlockConnected(context.Background(), block, 101)
		if err == nil {
			break
		}
		if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "55P03" {
			t.Fatalf("publication: %v", err)
		}
		if tries > 20 {
			t.Fatalf("the block is still not published after %d tries", tries)
		}
	}
	if err := <-addDone; err != nil {
		t.Fatalf("add for the user whose registration vanished: %v", err)
	}
	if tries != 1 {
		t.Fatalf("the publication gave up %d times on the add waiting for the vanished registration", tries-1)
	}
}
