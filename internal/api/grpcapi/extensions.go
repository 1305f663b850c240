package grpcapi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// MaxBatchItems bounds add_appointments; the HTTP API enforces the same bound first.
const MaxBatchItems = 1000

// Extensions implements PublicTowerExtensions: teos-go additions to the public API, kept out
// of rust-teos's PublicTowerServices. It shares Public's checks and error mapping, so every
// item fails exactly as add_appointment would.
type Extensions struct {
	teosv2.UnimplementedPublicTowerExtensionsServer
	public *Public
}

var _ teosv2.PublicTowerExtensionsServer = (*Extensions)(nil)

// NewExtensions returns the extension service backed by the same watcher as public.
func NewExtensions(public *Public) *Extensions {
	return &Extensions{public: public}
}

// AddAppointments adds a batch in one store transaction and answers per item. Only
// whole-request problems (bitcoind unreachable or the store refusing writes past the hold,
// empty or oversized batch) fail the call.
func (e *Extensions) AddAppointments(ctx context.Context, req *teosv2.AddAppointmentsRequest) (*teosv2.AddAppointmentsResponse, error) {
	var resp *teosv2.AddAppointmentsResponse
	b := newBatch(req) // once: a held batch's tries share its decoded items and recovered signers
	run := e.public.run
	if notHeld(ctx) {
		run = e.public.runNow
	}
	err := run(ctx, true, func() (err error) {
		resp, err = e.addAppointments(b)
		return err
	})
	if nw, ok := errors.AsType[*nothingWritten](err); ok {
		return nw.resp, nil
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// NoHoldHeader, sent with any value as gRPC metadata of an add_appointments call, asks for
// the batch not to be held: if the tower cannot serve it at once (a condition of the hold is
// down, or the store fails the write) the call fails with Unavailable and nothing written. The
// HTTP edge sends its coalesced batches so (internal/api/addbatch) and then sends each add
// again on its own, to be held one by one: each with its own bound, its own place among the
// held, and dropped when its own client leaves.
const NoHoldHeader = "teos-no-hold"

func notHeld(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(NoHoldHeader)) > 0
}

// nothingWritten carries the answer of a batch none of whose items was written (all refused):
// as one by one, where a refused add is an error, the hold must not take it for a write the
// store accepted and clear its store condition.
type nothingWritten struct {
	resp *teosv2.AddAppointmentsResponse
}

func (*nothingWritten) Error() string { return "no appointment of the batch was written" }

// batch is an add_appointments request decoded once for all its tries.
type batch struct {
	size    int
	items   []watcher.Item
	index   []int                                // items[j] answers the request's item index[j]
	invalid map[int]*teosv2.AddAppointmentResult // items refused before authentication
}

func newBatch(req *teosv2.AddAppointmentsRequest) *batch {
	reqs := req.GetAppointments()
	b := &batch{size: len(reqs)}
	if b.size == 0 || b.size > MaxBatchItems {
		return b
	}
	for i, r := range reqs {
		a, err := appointmentFromRequest(r)
		if err != nil {
			if b.invalid == nil {
				b.invalid = make(map[int]*teosv2.AddAppointmentResult)
			}
			b.invalid[i] = errorResult(err)
			continue
		}
		b.items = append(b.items, watcher.Item{Appointment: a, Signature: r.GetSignature()})
		b.index = append(b.index, i)
	}
	return b
}

// addAppointments is one try of AddAppointments. A store fault fails the whole batch (one
// transaction, nothing written) and is returned as the error, so the batch can be held and
// run again.
func (e *Extensions) addAppointments(b *batch) (*teosv2.AddAppointmentsResponse, error) {
	p := e.public
	if b.size == 0 || b.size > MaxBatchItems {
		return nil, status.Errorf(codes.InvalidArgument, "A batch holds 1 to %d appointments, got %d", MaxBatchItems, b.size)
	}
	results := make([]*teosv2.AddAppointmentResult, b.size)
	for i, r := range b.invalid {
		results[i] = r
	}
	items, index := b.items, b.index
	var fault func(error) bool
	if p.hold.Gate != nil {
		fault = storeFault // held and run again: nothing of the batch may be written first
	}
	res, err := p.watcher.AddAppointmentsUnless(items, fault)
	if err != nil {
		return nil, err
	}
	written := false
	for j, r := range res {
		if p.hold.Gate != nil && storeFault(r.Err) {
			return nil, r.Err
		}
		if r.Err != nil {
			results[index[j]] = errorResult(p.addAppointmentStatus(r.Err))
			continue
		}
		results[index[j]] = &teosv2.AddAppointmentResult{
			Result: &teosv2.AddAppointmentResult_Receipt{Receipt: addAppointmentResponse(r.Accepted)},
		}
		written = true
	}
	if !written {
		return nil, &nothingWritten{&teosv2.AddAppointmentsResponse{Results: results}}
	}
	return &teosv2.AddAppointmentsResponse{Results: results}, nil
}

// GetInfo answers whatever bitcoind's state, so clients can probe for extensions.
func (e *Extensions) GetInfo(context.Context, *emptypb.Empty) (*teosv2.GetInfoResponse, error) {
	id := e.public.watcher.TowerID()
	return &teosv2.GetInfoResponse{
		TowerId:    id[:],
		Version:    teos.Version,
		Extensions: served(e.public.watcher.CanDelete()),
	}, nil
}

// errorResult carries a status as a per-item result.
func errorResult(err error) *teosv2.AddAppointmentResult {
	st, _ := status.FromError(err)
	return &teosv2.AddAppointmentResult{Result: &teosv2.AddAppointmentResult_Error{
		Error: &teosv2.AppointmentError{Code: uint32(st.Code()), Message: st.Message()},
	}}
}
