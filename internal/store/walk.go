package store

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// walkChunk is how many records a whole-store walk reads per read transaction. A read
// transaction held open blocks any commit that grows the file (bbolt's remap waits for every
// reader) and every new read behind that commit, and pins the pages freed meanwhile; a chunk
// keeps that to the time it takes to read walkChunk records. A test lowers it.
var walkChunk = 1024

// walkBucket visits the records of the bucket pick selects in key order, walkChunk of them
// per read transaction: read runs for each record inside the transaction (it must copy what
// it keeps), chunkDone once per chunk after the transaction ended. Each chunk resumes after
// the last key the previous one read, so a record stored for the whole walk is read exactly
// once, and one put or deleted during the walk may or may not be; there is no snapshot of
// the whole bucket.
func (s *Store) walkBucket(pick func(*buckets) *bolt.Bucket, read func(b *buckets, k, v []byte) error, chunkDone func() error) error {
	var resume []byte
	for {
		last := false
		err := s.view(func(b *buckets) error {
			c := pick(b).Cursor()
			var k, v []byte
			if resume == nil {
				k, v = c.First()
			} else if k, v = c.Seek(resume); k != nil && bytes.Equal(k, resume) {
				k, v = c.Next() // read by the previous chunk
			}
			for n := 0; k != nil && n < walkChunk; k, v = c.Next() {
				if err := read(b, k, v); err != nil {
					return err
				}
				resume = append(resume[:0], k...)
				n++
			}
			last = k == nil
			return nil
		})
		if err != nil {
			return err
		}
		if err := chunkDone(); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

// UnreadableRecords is the error of a listing that went through to the end but skipped records
// it could not read (ErrCorrupt each): everything readable was listed.
type UnreadableRecords struct {
	Count int
	First []error // the first few, each naming its record
}

// maxNamedUnreadable caps how many skipped records an UnreadableRecords names.
const maxNamedUnreadable = 10

func (u *UnreadableRecords) add(err error) {
	u.Count++
	if len(u.First) < maxNamedUnreadable {
		u.First = append(u.First, err)
	}
}

func (u *UnreadableRecords) Error() string {
	msgs := make([]string, len(u.First))
	for i, err := range u.First {
		msgs[i] = err.Error()
	}
	more := ""
	if u.Count > len(u.First) {
		more = fmt.Sprintf("; %d more", u.Count-len(u.First))
	}
	return fmt.Sprintf("%d unreadable records skipped: %s%s", u.Count, strings.Join(msgs, "; "), more)
}

// Is makes errors.Is(err, ErrCorrupt) hold.
func (u *UnreadableRecords) Is(target error) bool { return target == ErrCorrupt }

// orNil returns u as an error, or nil if nothing was skipped.
func (u *UnreadableRecords) orNil() error {
	if u.Count == 0 {
		return nil
	}
	return u
}

// skippable reports whether err is about one record's bytes, which a listing skips.
func skippable(err error) bool { return errors.Is(err, ErrCorrupt) }
