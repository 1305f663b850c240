package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teos-go/teos/internal/api/msglimit"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

const msgUserNotFound = "User not found"

// Address is one place the tower's public API is reachable, for get_tower_info.
type Address struct {
	Type teosv2.NetworkAddress_AddressType
	Host string
	Port uint16
}

// PrivateStore is what the admin service reads; every store.Engine has it.
type PrivateStore interface {
	ForEachAppointment(loc *teos.Locator, fn func(a *store.Appointment, t *store.Tracker) error) error
	Counts() (users, watcherAppointments, trackers int, err error)
	Users() ([]teos.UserID, error)
	User(id teos.UserID) (store.UserInfo, bool, error)
	UserAppointments(id teos.UserID) ([]teos.UUID, error)
}

// PrivateConfig wires the admin service.
type PrivateConfig struct {
	Store   PrivateStore
	TowerID teos.UserID
	// Reachable reports whether bitcoind answers (only shown, never checked: the admin API
	// works while bitcoind is down).
	Reachable func() bool
	// Addresses are the public API's, first the IPv4 bind, then the onion if any.
	Addresses []Address
	// Leadership, if set, says whether this instance leads the instances sharing its
	// database; nil means a standalone tower.
	Leadership func() Leadership
	// FrontEnds, if set, describes the other front ends this teosd serves; it must be cheap.
	FrontEnds func() ([]FrontEnd, error)
	// Shutdown starts the tower's graceful shutdown; it must not block.
	Shutdown func()
	Logger   *slog.Logger
	// AnswerLimit bounds get_all_appointments' answer in bytes (0: msglimit.MaxMessageSize,
	// what the server sends at most).
	AnswerLimit int
}

// Private implements PrivateTowerServices (the teos-cli admin API) on top of the store.
type Private struct {
	teosv2.UnimplementedPrivateTowerServicesServer
	cfg PrivateConfig
	log *slog.Logger
}

var _ teosv2.PrivateTowerServicesServer = (*Private)(nil)

// NewPrivate returns the admin service.
func NewPrivate(cfg PrivateConfig) *Private {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Reachable == nil {
		cfg.Reachable = func() bool { return true }
	}
	if cfg.Shutdown == nil {
		cfg.Shutdown = func() {}
	}
	if cfg.AnswerLimit <= 0 {
		cfg.AnswerLimit = msglimit.MaxMessageSize
	}
	return &Private{cfg: cfg, log: logger.With("component", "grpcapi")}
}

func (p *Private) GetAllAppointments(context.Context, *emptypb.Empty) (*teosv2.GetAllAppointmentsResponse, error) {
	all, err := p.appointments("get_all_appointments", nil)
	if errors.Is(err, errAnswerTooLarge) {
		p.log.Error("answer too large to send", "method", "get_all_appointments", "limit", p.cfg.AnswerLimit)
		return nil, msglimit.TooLarge(p.cfg.AnswerLimit)
	}
	if err != nil {
		return nil, p.internal("get_all_appointments", err)
	}
	return &teosv2.GetAllAppointmentsResponse{Appointments: all}, nil
}

func (p *Private) GetAppointments(_ context.Context, req *teosv2.GetAppointmentsRequest) (*teosv2.GetAppointmentsResponse, error) {
	loc, err := teos.LocatorFromBytes(req.GetLocator())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, msgInvalidLocator)
	}
	matching, err := p.appointments("get_appointments", &loc)
	if errors.Is(err, errAnswerTooLarge) {
		p.log.Error("answer too large to send", "method", "get_appointments", "limit", p.cfg.AnswerLimit)
		return nil, msglimit.TooLarge(p.cfg.AnswerLimit)
	}
	if err != nil {
		return nil, p.internal("get_appointments", err)
	}
	return &teosv2.GetAppointmentsResponse{Appointments: matching}, nil
}

// errAnswerTooLarge stops a walk whose answer would exceed AnswerLimit.
var errAnswerTooLarge = errors.New("answer too large")

// appointments lists the appointments still watched, then the trackers, as rust-teos does
// (watcher first, then responder); loc filters by locator when not nil. Records the store
// cannot read are left out and logged: the admin still sees everything else. The walk stops
// with errAnswerTooLarge as soon as the answer could not be sent: on a big tower the whole
// list is gigabytes, which teosd would otherwise build only to refuse it.
func (p *Private) appointments(method string, loc *teos.Locator) ([]*commonv2.AppointmentData, error) {
	watched := []*commonv2.AppointmentData{}
	var tracked []*commonv2.AppointmentData
	size := 0
	err := p.cfg.Store.ForEachAppointment(loc, func(a *store.Appointment, t *store.Tracker) error {
		var d *commonv2.AppointmentData
		if t != nil {
			d = TrackerData(t)
			tracked = append(tracked, d)
		} else {
			d = AppointmentData(a)
			watched = append(watched, d)
		}
		// One repeated field 1 entry of the answer: tag, length, message.
		size += 1 + protowire.SizeBytes(proto.Size(d))
		if size > p.cfg.AnswerLimit {
			return errAnswerTooLarge
		}
		return nil
	})
	if _, ok := errors.AsType[*store.UnreadableRecords](err); ok {
		p.log.Error("unreadable records left out of the listing", "method", method, "err", err)
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return append(watched, tracked...), nil
}

func (p *Private) GetTowerInfo(context.Context, *emptypb.Empty) (*teosv2.GetTowerInfoResponse, error) {
	users, watched, trackers, err := p.cfg.Store.Counts()
	if err != nil {
		return nil, p.internal("get_tower_info", err)
	}
	addrs := make([]*teosv2.NetworkAddress, len(p.cfg.Addresses))
	for i, a := range p.cfg.Addresses {
		addrs[i] = &teosv2.NetworkAddress{AddressType: a.Type, Address: a.Host, Port: uint32(a.Port)}
	}
	resp := &teosv2.GetTowerInfoResponse{
		TowerId:              p.cfg.TowerID[:],
		NRegisteredUsers:     uint32(users),
		NWatcherAppointments: uint32(watched),
		NResponderTrackers:   uint32(trackers),
		BitcoindReachable:    p.cfg.Reachable(),
		Addresses:            addrs,
	}
	if err := p.towerInfoExtensions(resp); err != nil {
		return nil, p.internal("get_tower_info", err)
	}
	return resp, nil
}

func (p *Private) GetUsers(context.Context, *emptypb.Empty) (*teosv2.GetUsersResponse, error) {
	ids, err := p.cfg.Store.Users()
	if err != nil {
		return nil, p.internal("get_users", err)
	}
	out := make([][]byte, len(ids))
	for i := range ids {
		out[i] = ids[i][:]
	}
	return &teosv2.GetUsersResponse{UserIds: out}, nil
}

func (p *Private) GetUser(_ context.Context, req *teosv2.GetUserRequest) (*teosv2.GetUserResponse, error) {
	id, err := teos.ParseUserID(req.GetUserId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, msgInvalidUserID)
	}
	info, ok, err := p.cfg.Store.User(id)
	if err != nil {
		return nil, p.internal("get_user", err)
	}
	if !ok {
		return nil, status.Error(codes.NotFound, msgUserNotFound)
	}
	uuids, err := p.cfg.Store.UserAppointments(id)
	if err != nil {
		return nil, p.internal("get_user", err)
	}
	out := make([][]byte, len(uuids))
	for i := range uuids {
		out[i] = uuids[i][:]
	}
	return &teosv2.GetUserResponse{
		AvailableSlots:     info.AvailableSlots,
		SubscriptionExpiry: info.SubscriptionExpiry,
		Appointments:       out,
	}, nil
}

// Stop starts the graceful shutdown and returns at once; the servers drain this very call
// before closing.
func (p *Private) Stop(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	p.log.Info("shutdown requested through the admin API")
	p.cfg.Shutdown()
	return &emptypb.Empty{}, nil
}

// internal logs the cause and hides it from the client.
func (p *Private) internal(method string, err error) error {
	p.log.Error("request failed", "method", method, "err", err)
	return status.Error(codes.Internal, msgInternal)
}

// LogRequests is a unary interceptor writing one Debug line per call outcome: method, gRPC
// code and duration. Payloads are never logged.
func LogRequests(logger *slog.Logger) grpc.UnaryServerInterceptor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "grpc")
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logger.LogAttrs(ctx, slog.LevelDebug, "rpc",
			slog.String("method", info.FullMethod),
			slog.String("code", status.Code(err).String()),
			slog.Duration("duration", time.Since(start)))
		return resp, err
	}
}
