package grpcapi

import (
	"context"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teos-go/teos/pkg/teos"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// AllowlistStore is the registration allowlist as the store keeps it.
type AllowlistStore interface {
	AllowUser(id teos.UserID) (bool, error)
	DisallowUser(id teos.UserID) (bool, error)
	AllowedUsers() ([]teos.UserID, error)
}

// msgBadUserID is teos-cli's wording for a user id that is not a compressed key.
const msgBadUserID = "Provided public key does not match expected format (33-byte compressed key)"

// PrivateExtensions implements PrivateTowerExtensions: teos-go's admin additions (the
// registration allowlist), served next to PrivateTowerServices on the mTLS admin listener.
type PrivateExtensions struct {
	teosv2.UnimplementedPrivateTowerExtensionsServer
	store AllowlistStore
	log   *slog.Logger
}

var _ teosv2.PrivateTowerExtensionsServer = (*PrivateExtensions)(nil)

// NewPrivateExtensions returns the admin extension service.
func NewPrivateExtensions(s AllowlistStore, logger *slog.Logger) *PrivateExtensions {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &PrivateExtensions{store: s, log: logger.With("component", "grpcapi")}
}

func (p *PrivateExtensions) AddUser(_ context.Context, req *teosv2.AddUserRequest) (*teosv2.AddUserResponse, error) {
	id, err := teos.ParseUserID(req.GetUserId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, msgBadUserID)
	}
	changed, err := p.store.AllowUser(id)
	if err != nil {
		p.log.Error("admin request failed", "method", "add_user", "err", err)
		return nil, status.Error(codes.Internal, msgInternal)
	}
	p.log.Info("user added to the registration allowlist", "user_id", id, "changed", changed)
	return &teosv2.AddUserResponse{Changed: changed}, nil
}

func (p *PrivateExtensions) RemoveUser(_ context.Context, req *teosv2.RemoveUserRequest) (*teosv2.RemoveUserResponse, error) {
	id, err := teos.ParseUserID(req.GetUserId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, msgBadUserID)
	}
	changed, err := p.store.DisallowUser(id)
	if err != nil {
		p.log.Error("admin request failed", "method", "remove_user", "err", err)
		return nil, status.Error(codes.Internal, msgInternal)
	}
	p.log.Info("user removed from the registration allowlist", "user_id", id, "changed", changed)
	return &teosv2.RemoveUserResponse{Changed: changed}, nil
}

func (p *PrivateExtensions) GetAllowedUsers(context.Context, *emptypb.Empty) (*teosv2.GetAllowedUsersResponse, error) {
	ids, err := p.store.AllowedUsers()
	if err != nil {
		p.log.Error("admin request failed", "method", "get_allowed_users", "err", err)
		return nil, status.Error(codes.Internal, msgInternal)
	}
	out := make([][]byte, len(ids))
	for i := range ids {
		out[i] = ids[i][:]
	}
	return &teosv2.GetAllowedUsersResponse{UserIds: out}, nil
}
