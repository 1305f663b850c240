package inspector

import (
	"fmt"

	"github.com/teos-go/teos/internal/serdejson"
	"github.com/teos-go/teos/pkg/teos"
)

// Bounds of a POST /add_appointments body (a teos-go extension).
const (
	// MaxBatchItems is the most appointments one batch may hold.
	MaxBatchItems = 1000
	// MaxBatchItemSize is /add_appointment's body limit: an item may be no bigger than the
	// body it would be on its own.
	MaxBatchItemSize = 2048
)

// BatchItem is one checked item of an /add_appointments body: Request, or Err as
// InspectAddAppointment would return it for the item sent alone.
type BatchItem struct {
	Request AddAppointmentRequest
	Err     error
}

var addAppointmentsSpec = &serdejson.Struct{Name: "AddAppointmentsRequest", Fields: []serdejson.Field{
	// One past the most allowed: enough to refuse a longer list without keeping it.
	{Name: "appointments", Kind: serdejson.KindRawList, MaxItems: MaxBatchItems + 1},
}}

// InspectAddAppointments checks an /add_appointments body, {"appointments": [item, ...]}
// where each item is an /add_appointment body. The error return is for the body as a whole
// (bad JSON, no list, empty or too long); an item's own problems only fail that item, with
// the message it would get alone (serde positions count from the item's first byte).
func InspectAddAppointments(body []byte) ([]BatchItem, error) {
	vals, err := decode(body, addAppointmentsSpec)
	if err != nil {
		return nil, err
	}
	raw, n := vals[0].Raw, vals[0].Items
	switch {
	case n == 0:
		return nil, &Error{Code: teos.ErrCodeInvalidRequestFormat, Message: "`appointments` is empty"}
	case n > MaxBatchItems:
		return nil, &Error{
			Code:    teos.ErrCodeInvalidRequestFormat,
			Message: fmt.Sprintf("`appointments` holds %d items, at most %d are allowed", n, MaxBatchItems),
		}
	}
	items := make([]BatchItem, len(raw))
	for i, r := range raw {
		if len(r) > MaxBatchItemSize {
			items[i].Err = &Error{
				Code:    teos.ErrCodeInvalidRequestFormat,
				Message: fmt.Sprintf("The appointment is too large (%d bytes, at most %d)", len(r), MaxBatchItemSize),
			}
			continue
		}
		items[i].Request, items[i].Err = InspectAddAppointment(r)
	}
	return items, nil
}
