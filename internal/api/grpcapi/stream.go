package grpcapi

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/pkg/teos"
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
	reqs := req.GetAppointments()
	if len(reqs) == 0 || len(reqs) > MaxBatchItems {
		return status.Errorf(codes.InvalidArgument, "A batch holds 1 to %d appointments, got %d", MaxBatchItems, len(reqs))
	}
	ctx := stream.Context()
	for first := 0; first < len(reqs); first += StreamGroup {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		// Each group is an add_appointments call of its own: one transaction, and the same
		// checks (bitcoind reachable, ...) before it.
		resp, err := e.AddAppointments(ctx, &teosv2.AddAppointmentsRequest{Appointments: reqs[first:min(first+StreamGroup, len(reqs))]})
		if err != nil {
			return err
		}
		if err := stream.Send(&teosv2.AddAppointmentsStreamResponse{First: uint32(first), Results: resp.GetResults()}); err != nil {
			return err
		}
	}
	return nil
}

// served lists the extensions GET /info names (the HTTP ones, compression and streaming, are
// served by httpapi on top of these RPCs); delete_appointment only where the store can delete.
func served(canDelete bool) []string {
	ext := []string{teos.ExtensionAddAppointments}
	if canDelete {
		ext = append(ext, teos.ExtensionDeleteAppointment)
	}
	return append(ext, teos.ExtensionCompressedUploads, teos.ExtensionStreamedUploads)
}
