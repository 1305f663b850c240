package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Bounds on a zstd frame's window and memory: far above what a 2.2 MB body needs, far below
// what a hostile frame header may ask for.
const (
	zstdMaxWindow = 8 << 20
	zstdMaxMemory = 16 << 20
)

var errTooLarge = errors.New("decompressed body over the limit")

// decodeContent undoes the request's Content-Encoding (zstd, gzip, or none) on body, never
// producing more than limit bytes: a body that would expand past it is refused as soon as
// the decoder has produced limit+1 bytes (or a zstd frame header announces more). On failure
// it has answered the request and returns false: 415 for an encoding it does not know, 413
// past the limit, 400 with error_code 6 for a corrupt stream.
func (h *handler) decodeContent(w http.ResponseWriter, r *http.Request, body []byte, limit int64) ([]byte, bool) {
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	var (
		out []byte
		err error
	)
	switch enc {
	case "", "identity":
		return body, true
	case "zstd":
		out, err = unzstd(body, limit)
	case "gzip", "x-gzip":
		out, err = gunzip(body, limit)
	default:
		h.writeText(w, http.StatusUnsupportedMediaType, textUnsupportedMediaType)
		return nil, false
	}
	switch {
	case err == nil:
		return out, true
	case errors.Is(err, errTooLarge):
		h.logger.Debug("compressed body too large once decompressed", "encoding", enc, "compressed", len(body))
		h.writeText(w, http.StatusRequestEntityTooLarge, textPayloadTooLarge)
	default:
		h.writeRejection(w, r, &decodeError{fmt.Sprintf("Request body could not be decompressed (%s): %v", enc, err)})
	}
	return nil, false
}

// decodeError is a corrupt compressed body; it answers with INVALID_REQUEST_FORMAT, as a body
// that is not JSON does.
type decodeError struct{ msg string }

func (e *decodeError) Error() string { return e.msg }

func unzstd(body []byte, limit int64) ([]byte, error) {
	dec, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(zstdMaxMemory))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	out, err := readLimited(dec, limit)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return nil, errTooLarge
	}
	return out, err
}

func gunzip(body []byte, limit int64) ([]byte, error) {
	dec, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	return readLimited(dec, limit)
}

// readLimited reads r to the end, failing with errTooLarge at limit+1 bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, errTooLarge
	}
	return out, nil
}
