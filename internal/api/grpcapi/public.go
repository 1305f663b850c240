// Package grpcapi serves the tower's gRPC services and translates between proto messages and
// the core's types and errors.
package grpcapi

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// Messages the public API returns; clients match some of them, so they are exact.
const (
	msgUnavailable       = "Service currently unavailable"
	msgInvalidUserID     = "Provided public key does not match expected format (33-byte compressed key)"
	msgMaxSlots          = "Subscription maximum slots count reached"
	msgAddUnauthorized   = "Invalid signature or user does not have enough slots available"
	msgGetUnauthorized   = "User cannot be authenticated"
	msgInfoUnauthorized  = "User not found. Have you registered?"
	msgAlreadyTriggered  = "The provided appointment has already been triggered"
	msgNotFound          = "Appointment not found"
	msgInvalidLocator    = "The provided locator does not match the expected format (16-byte hexadecimal string)"
	msgMissingAppointent = "The request has no appointment"
	msgInternal          = "internal error"
	// MsgDamaged answers an add that reached a damaged page of the tower's database, or a
	// record there that no longer decodes (DataLoss): the edge turns it into error_code 7, the
	// code the CLN plugin keeps pending, so the appointment is sent again once the operator
	// has repaired the file instead of being filed as invalid for a fault of the tower's own.
	MsgDamaged = msgUnavailable + ": the tower's database needs repair, send again later"
)

// Public implements PublicTowerServices on top of the watcher.
type Public struct {
	teosv2.UnimplementedPublicTowerServicesServer
	watcher   *watcher.Watcher
	reachable func() bool
	hold      Hold
	log       *slog.Logger
}

var _ teosv2.PublicTowerServicesServer = (*Public)(nil)

// NewPublic returns the public service. reachable reports whether bitcoind answers; while it
// does not, every method fails with Unavailable, as in rust-teos, unless SetHold makes the
// methods wait for bitcoind first.
func NewPublic(w *watcher.Watcher, reachable func() bool, logger *slog.Logger) *Public {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Public{watcher: w, reachable: reachable, log: logger.With("component", "grpcapi")}
}

func (p *Public) Register(ctx context.Context, req *commonv2.RegisterRequest) (*commonv2.RegisterResponse, error) {
	var r *watcher.Registration
	err := p.run(ctx, true, func() (err error) {
		r, err = p.watcher.Register(req.GetUserId())
		return err
	})
	var refused *gatekeeper.RegistrationRefusedError
	switch {
	case err == nil:
	case isStatus(err):
		return nil, err
	case errors.As(err, &refused): // teos-go's registration policy: rust-teos's registration error shape
		return nil, status.Error(codes.ResourceExhausted, refused.Message)
	case errors.Is(err, watcher.ErrInvalidUserID):
		return nil, status.Error(codes.InvalidArgument, msgInvalidUserID)
	case errors.Is(err, gatekeeper.ErrMaxSlots):
		return nil, status.Error(codes.ResourceExhausted, msgMaxSlots)
	default:
		return nil, p.internal("register", err)
	}
	return &commonv2.RegisterResponse{
		UserId:                r.UserID[:],
		AvailableSlots:        r.AvailableSlots,
		SubscriptionStart:     r.SubscriptionStart,
		SubscriptionExpiry:    r.SubscriptionExpiry,
		SubscriptionSignature: r.Signature,
	}, nil
}

func (p *Public) AddAppointment(ctx context.Context, req *commonv2.AddAppointmentRequest) (*commonv2.AddAppointmentResponse, error) {
	var acc *watcher.Accepted
	err := p.run(ctx, true, func() error {
		a, err := appointmentFromRequest(req)
		if err != nil {
			return err
		}
		acc, err = p.watcher.AddAppointment(a, req.GetSignature())
		return err
	})
	if err != nil {
		return nil, p.addAppointmentStatus(err)
	}
	return addAppointmentResponse(acc), nil
}

// isStatus reports whether err is already a gRPC status (an answer, or Unavailable).
func isStatus(err error) bool {
	_, ok := status.FromError(err)
	return ok
}

// appointmentFromRequest checks what add_appointment needs before the core sees it; the
// error is a status.
func appointmentFromRequest(req *commonv2.AddAppointmentRequest) (teos.Appointment, error) {
	pa := req.GetAppointment()
	if pa == nil {
		return teos.Appointment{}, status.Error(codes.InvalidArgument, msgMissingAppointent)
	}
	loc, err := teos.LocatorFromBytes(pa.GetLocator())
	if err != nil {
		return teos.Appointment{}, status.Error(codes.InvalidArgument, msgInvalidLocator)
	}
	return teos.Appointment{Locator: loc, EncryptedBlob: pa.GetEncryptedBlob(), ToSelfDelay: pa.GetToSelfDelay()}, nil
}

// addAppointmentStatus maps a core error from adding an appointment to its status; both
// add_appointment and the add_appointments extension answer with it.
func (p *Public) addAppointmentStatus(err error) error {
	var expired *gatekeeper.SubscriptionExpiredError
	switch {
	case isStatus(err):
		return err
	case errors.Is(err, gatekeeper.ErrAuthenticationFailed), errors.Is(err, gatekeeper.ErrNotEnoughSlots):
		return status.Error(codes.Unauthenticated, msgAddUnauthorized)
	case errors.As(err, &expired):
		return expiredStatus(expired)
	case errors.Is(err, watcher.ErrAlreadyTriggered):
		return status.Error(codes.AlreadyExists, msgAlreadyTriggered)
	case errors.Is(err, store.ErrDamaged), errors.Is(err, store.ErrCorrupt):
		// A damaged page, or a record that no longer decodes: the tower's own fault, which
		// does not heal while it runs; the appointment is fine and must be sent again.
		p.log.Error("request failed", "method", "add_appointment", "err", err)
		return status.Error(codes.DataLoss, MsgDamaged)
	default:
		return p.internal("add_appointment", err)
	}
}

func addAppointmentResponse(acc *watcher.Accepted) *commonv2.AddAppointmentResponse {
	return &commonv2.AddAppointmentResponse{
		Locator:            acc.Locator[:],
		StartBlock:         acc.StartBlock,
		Signature:          acc.Signature,
		AvailableSlots:     acc.AvailableSlots,
		SubscriptionExpiry: acc.SubscriptionExpiry,
	}
}

// lookupStatus maps the errors of a signed request about one of the user's appointments
// (get_appointment, and delete_appointment as it follows it): authentication, expiry, and "not
// found", which is also what another user's locator gives.
func (p *Public) lookupStatus(method string, err error) error {
	var expired *gatekeeper.SubscriptionExpiredError
	switch {
	case isStatus(err):
		return err
	case errors.Is(err, gatekeeper.ErrAuthenticationFailed):
		return status.Error(codes.Unauthenticated, msgGetUnauthorized)
	case errors.As(err, &expired):
		return expiredStatus(expired)
	case errors.Is(err, watcher.ErrNotFound):
		return status.Error(codes.NotFound, msgNotFound)
	default:
		return p.internal(method, err)
	}
}

func (p *Public) GetAppointment(ctx context.Context, req *commonv2.GetAppointmentRequest) (*commonv2.GetAppointmentResponse, error) {
	var (
		a *store.Appointment
		t *store.Tracker
	)
	err := p.run(ctx, false, func() error {
		loc, err := teos.LocatorFromBytes(req.GetLocator())
		if err != nil {
			return status.Error(codes.InvalidArgument, msgInvalidLocator)
		}
		a, t, err = p.watcher.GetAppointment(loc, req.GetSignature())
		return err
	})
	if err != nil {
		return nil, p.lookupStatus("get_appointment", err)
	}
	if t != nil {
		return &commonv2.GetAppointmentResponse{
			AppointmentData: TrackerData(t),
			Status:          commonv2.GetAppointmentResponse_DISPUTE_RESPONDED,
		}, nil
	}
	return &commonv2.GetAppointmentResponse{
		AppointmentData: AppointmentData(a),
		Status:          commonv2.GetAppointmentResponse_BEING_WATCHED,
	}, nil
}

func (p *Public) GetSubscriptionInfo(ctx context.Context, req *commonv2.GetSubscriptionInfoRequest) (*commonv2.GetSubscriptionInfoResponse, error) {
	var (
		info store.UserInfo
		locs []teos.Locator
	)
	err := p.run(ctx, false, func() (err error) {
		info, locs, err = p.watcher.SubscriptionInfo(req.GetSignature())
		return err
	})
	var expired *gatekeeper.SubscriptionExpiredError
	switch {
	case err == nil:
	case isStatus(err):
		return nil, err
	case errors.Is(err, gatekeeper.ErrAuthenticationFailed):
		return nil, status.Error(codes.Unauthenticated, msgInfoUnauthorized)
	case errors.As(err, &expired):
		return nil, expiredStatus(expired)
	default:
		return nil, p.internal("get_subscription_info", err)
	}
	out := make([][]byte, len(locs))
	for i := range locs {
		out[i] = locs[i][:]
	}
	return &commonv2.GetSubscriptionInfoResponse{
		AvailableSlots:     info.AvailableSlots,
		SubscriptionExpiry: info.SubscriptionExpiry,
		Locators:           out,
	}, nil
}

// internal logs the cause and hides it from the client.
func (p *Public) internal(method string, err error) error {
	p.log.Error("request failed", "method", method, "err", err)
	return status.Error(codes.Internal, msgInternal)
}

func expiredStatus(e *gatekeeper.SubscriptionExpiredError) error {
	return status.Errorf(codes.Unauthenticated, "Your subscription expired at %d", e.Expiry)
}

// AppointmentData wraps a stored appointment for the wire.
func AppointmentData(a *store.Appointment) *commonv2.AppointmentData {
	return &commonv2.AppointmentData{AppointmentData: &commonv2.AppointmentData_Appointment{Appointment: &commonv2.Appointment{
		Locator:       a.Locator[:],
		EncryptedBlob: a.EncryptedBlob,
		ToSelfDelay:   a.ToSelfDelay,
	}}}
}

// TrackerData wraps a tracker for the wire; txids stay in internal byte order.
func TrackerData(t *store.Tracker) *commonv2.AppointmentData {
	return &commonv2.AppointmentData{AppointmentData: &commonv2.AppointmentData_Tracker{Tracker: &commonv2.Tracker{
		DisputeTxid:  t.DisputeTxID[:],
		PenaltyTxid:  t.PenaltyTxID[:],
		PenaltyRawtx: t.PenaltyTx,
	}}}
}
