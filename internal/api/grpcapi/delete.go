package grpcapi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// msgDeleteTriggered refuses to delete an appointment whose penalty is in flight.
const msgDeleteTriggered = "The provided appointment has already been triggered and cannot be deleted"

// msgDeleteUnsupported answers delete_appointment on a tower whose store cannot delete (the
// PostgreSQL engine): an answer, never a fault to hold.
const msgDeleteUnsupported = "This tower does not serve delete_appointment"

// DeleteAppointment deletes the caller's watched appointment and signs a deletion receipt.
// Errors are get_appointment's (a deletion signed by another user is not found), plus
// AlreadyExists once the appointment's dispute is mined.
func (e *Extensions) DeleteAppointment(ctx context.Context, req *teosv2.DeleteAppointmentRequest) (*teosv2.DeleteAppointmentResponse, error) {
	p := e.public
	if !p.watcher.CanDelete() { // not advertised in /info either
		return nil, status.Error(codes.Unimplemented, msgDeleteUnsupported)
	}
	loc, err := teos.LocatorFromBytes(req.GetLocator())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, msgInvalidLocator)
	}
	var d *watcher.Deleted
	err = p.run(ctx, true, func() (err error) {
		d, err = p.watcher.DeleteAppointment(loc, req.GetSignature())
		return err
	})
	switch {
	case err == nil:
	case errors.Is(err, watcher.ErrAlreadyTriggered):
		return nil, status.Error(codes.AlreadyExists, msgDeleteTriggered)
	default:
		return nil, p.lookupStatus("delete_appointment", err)
	}
	return &teosv2.DeleteAppointmentResponse{
		Locator:            d.Locator[:],
		DeletionBlock:      d.DeletionBlock,
		Signature:          d.Signature,
		AvailableSlots:     d.AvailableSlots,
		SubscriptionExpiry: d.SubscriptionExpiry,
	}, nil
}
