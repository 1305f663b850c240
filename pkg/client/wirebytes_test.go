package client

import (
	"testing"

	"github.com/teos-go/teos/pkg/teos"
)

// TestUploadWireBytes measures the request bodies a client sends to upload 10,000
// appointments with the batch extension, uncompressed and with each encoding. Encrypted blobs
// are random and do not compress; the JSON carries them as hex, twice their size, and that
// half is what compression wins back. It asserts only that compression never makes a body
// larger; the figures are logged for docs/PERFORMANCE-UPLOADS.md.
func TestUploadWireBytes(t *testing.T) {
	n := 10_000
	if raceEnabled { // signing is ten times slower; the figures are for a normal build
		n = 1_000
	}
	for _, blobLen := range []int{150, 400} { // a small penalty; about a real one with HTLCs
		appts := make([]teos.Appointment, n)
		raw := 0
		for i := range appts {
			appts[i] = randomAppointment(t, blobLen)
			raw += teos.LocatorLen + blobLen + 4 + 65 // what a binary encoding would need
		}
		idxs := make([]int, n)
		for i := range idxs {
			idxs[i] = i
		}
		signer := New("http://127.0.0.1:1", teos.UserID{}, newUserKey(t))
		var reqs []batchRequest // signed once, encoded three ways
		for _, chunk := range signer.chunk(appts, idxs) {
			req := batchRequest{Appointments: make([]addRequest, len(chunk))}
			for k, i := range chunk {
				req.Appointments[k] = signer.newAddRequest(&appts[i])
			}
			reqs = append(reqs, req)
		}
		sizes := map[string]int{}
		for _, enc := range []string{EncodingNone, EncodingZstd, EncodingGzip} {
			tw := New("http://127.0.0.1:1", teos.UserID{}, newUserKey(t), WithCompression(enc))
			tw.extensions = []string{ExtAddAppointments, ExtCompressedUploads}
			for _, req := range reqs {
				body, _, err := tw.encodeBatch(req)
				if err != nil {
					t.Fatal(err)
				}
				sizes[enc] += len(body)
			}
		}
		if sizes[EncodingZstd] > sizes[EncodingNone] || sizes[EncodingGzip] > sizes[EncodingNone] {
			t.Fatalf("compression grew the upload: %v", sizes)
		}
		t.Logf("%d appointments, %d-byte blobs: JSON %d bytes, zstd %d (%.0f%%), gzip %d (%.0f%%); binary payload %d",
			n, blobLen, sizes[EncodingNone], sizes[EncodingZstd], 100*float64(sizes[EncodingZstd])/float64(sizes[EncodingNone]),
			sizes[EncodingGzip], 100*float64(sizes[EncodingGzip])/float64(sizes[EncodingNone]), raw)
	}
}
