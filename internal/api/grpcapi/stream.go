package grpcapi

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// StreamGroup is how many items of a streamed batch share one commit: each group's results
// are sent once its transaction is durable. Smaller groups report progress sooner and lose
// less to a cut; larger ones cost fewer fsyncs.
const StreamGroup = 100

// AddAppointmentsStream is AddAppointments committed in groups of StreamGroup items, in
// request order, each group's results sent as soon as the group is durable. A cancelled call
// (the client went away) stops before the next group: the groups already committed stay, the
// rest are never started.
func (e *Extensions) AddAppointmentsStream(req *teosv2.AddAppointmentsStreamRequest, stream grpc.ServerStreamingServer[teosv2.AddAppointmentsStreamResponse]) error {
	if !e.public.reachable() {
		return status.Error(codes.Unavailable, msgUnavailable)
	}
	reqs := req.GetAppointments()
	if len(reqs) == 0 || len(reqs) > MaxBatchItems {
		return status.Errorf(codes.InvalidArgument, "A batch holds 1 to %d appointments, got %d", MaxBatchItems, len(reqs))
	}
	ctx := stream.Context()
	for first := 0; first < len(reqs); first += StreamGroup {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		group := reqs[first:min(first+StreamGroup, len(reqs))]
		results := e.addBatch(group)
		if err := stream.Send(&teosv2.AddAppointmentsStreamResponse{First: uint32(first), Results: results}); err != nil {
			return err
		}
	}
	return nil
}
