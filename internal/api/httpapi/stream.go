package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/inspector"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// streamWriteWindow is how long a streamed answer may go without a flush before the server's
// write deadline ends it, on top of the hold bound (Config.HoldBound).
var streamWriteWindow = 30 * time.Second

// ndjson is the media type of streamed /add_appointments answers.
const ndjson = "application/x-ndjson"

// wantsNDJSON reports whether the client asked for a streamed answer.
func wantsNDJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == ndjson {
				return true
			}
		}
	}
	return false
}

// streamLine is one line of a streamed answer: {"index": i} followed by the item's
// /add_appointments result (a receipt or {"error", "error_code"}).
type streamLine struct {
	Index  int `json:"index"`
	Result any
}

func (l streamLine) MarshalJSON() ([]byte, error) {
	res, err := json.Marshal(l.Result)
	if err != nil || len(res) < 2 || res[0] != '{' {
		return nil, errors.New("stream result is not an object")
	}
	var b bytes.Buffer
	b.WriteString(`{"index":`)
	b.WriteString(strconv.Itoa(l.Index))
	if len(res) > 2 {
		b.WriteByte(',')
	}
	b.Write(res[1:])
	return b.Bytes(), nil
}

// addAppointmentsStream answers POST /add_appointments with Accept: application/x-ndjson: one
// line per item as soon as it is decided: the inspector's refusals at once, then each commit
// group's results once the group is durable. Whole-request problems found before anything
// is written answer as without streaming; one found later ends the stream with a line
// without "index" ({"error", "error_code"}): the items without a line may or may not be
// stored and are safe to send again.
func (h *handler) addAppointmentsStream(w http.ResponseWriter, r *http.Request, body []byte) {
	items, err := inspector.InspectAddAppointments(body)
	if err != nil {
		h.writeRejection(w, r, err)
		return
	}
	// The next group may be held through a fault for up to the hold bound before it commits.
	sw := &lineWriter{w: w, window: streamWriteWindow + h.cfg.HoldBound}
	req := &teosv2.AddAppointmentsStreamRequest{}
	var index []int // req.Appointments[j] is items[index[j]]
	for i, it := range items {
		if it.Err != nil {
			sw.line(streamLine{Index: i, Result: rejectionBody(it.Err)})
			continue
		}
		a := it.Request.Appointment
		req.Appointments = append(req.Appointments, &commonv2.AddAppointmentRequest{
			Appointment: &commonv2.Appointment{Locator: a.Locator[:], EncryptedBlob: a.EncryptedBlob, ToSelfDelay: a.ToSelfDelay},
			Signature:   it.Request.Signature,
		})
		index = append(index, i)
	}
	sw.flush()
	if len(index) == 0 {
		return
	}
	stream, err := h.ext.AddAppointmentsStream(r.Context(), req)
	if err == nil {
		for {
			var msg *teosv2.AddAppointmentsStreamResponse
			msg, err = stream.Recv()
			if err != nil {
				break
			}
			first, results := int(msg.GetFirst()), msg.GetResults()
			if first+len(results) > len(index) {
				err = status.Errorf(codes.Internal, "results %d..%d for %d appointments", first, first+len(results), len(index))
				break
			}
			for k, res := range results {
				sw.line(streamLine{Index: index[first+k], Result: batchResult(res)})
			}
			sw.flush()
		}
	}
	if errors.Is(err, io.EOF) {
		return
	}
	if r.Context().Err() != nil {
		h.logger.Debug("streamed upload cut by the client", "err", err)
		return
	}
	if !sw.started {
		h.writeStatus(w, r, err)
		return
	}
	st, body2 := StatusToHTTP(err)
	if stopping, ok := h.stoppingAnswer(r, err); ok {
		st, body2 = http.StatusServiceUnavailable, stopping
	} else if damaged, ok := damagedAnswer(r, err); ok {
		st, body2 = http.StatusServiceUnavailable, damaged
	}
	h.logger.Warn("streamed upload ended early", "status", st, "error_code", body2.Code, "err", err)
	sw.line(body2)
	sw.flush()
}

// lineWriter writes ndjson lines, sending the 200 header with the first one.
type lineWriter struct {
	w       http.ResponseWriter
	buf     bytes.Buffer
	started bool
	window  time.Duration // the write deadline after each flush
}

func (l *lineWriter) line(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return // unreachable: results hold strings and numbers
	}
	l.buf.Write(b)
	l.buf.WriteByte('\n')
}

// flush sends the buffered lines to the client now.
func (l *lineWriter) flush() {
	if l.buf.Len() == 0 {
		return
	}
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", ndjson)
		l.w.WriteHeader(http.StatusOK)
	}
	_, _ = l.w.Write(l.buf.Bytes())
	l.buf.Reset()
	rc := http.NewResponseController(l.w) // reaches through wrappers that Unwrap
	_ = rc.Flush()
	// A stream that keeps making progress may outlive the server's write timeout, which is
	// meant for one answer: each flush grants another window.
	_ = rc.SetWriteDeadline(time.Now().Add(l.window))
}
