package teosv2_test

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// Both packages have appointment.proto and user.proto; importing them together
// must not collide in the global registry (a conflict would panic at init).
func TestSameBaseNamesRegisterDistinctly(t *testing.T) {
	tests := []struct {
		path    string
		pkg     protoreflect.FullName
		message protoreflect.Message
	}{
		{"common/teos/v2/appointment.proto", "common.teos.v2", (&commonv2.Appointment{}).ProtoReflect()},
		{"common/teos/v2/user.proto", "common.teos.v2", (&commonv2.RegisterRequest{}).ProtoReflect()},
		{"teos/v2/appointment.proto", "teos.v2", (&teosv2.GetAppointmentsRequest{}).ProtoReflect()},
		{"teos/v2/user.proto", "teos.v2", (&teosv2.GetUserRequest{}).ProtoReflect()},
		{"teos/v2/tower_services.proto", "teos.v2", (&teosv2.GetTowerInfoResponse{}).ProtoReflect()},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			fd, err := protoregistry.GlobalFiles.FindFileByPath(tt.path)
			if err != nil {
				t.Fatalf("FindFileByPath: %v", err)
			}
			if fd.Package() != tt.pkg {
				t.Errorf("package = %s, want %s", fd.Package(), tt.pkg)
			}
			if got := tt.message.Descriptor().ParentFile().Path(); got != tt.path {
				t.Errorf("message registered from %s, want %s", got, tt.path)
			}
		})
	}
}

// teos-cli and rust-teos's HTTP front-end dial these exact paths.
func TestFullMethodNames(t *testing.T) {
	tests := []struct {
		desc    *grpc.ServiceDesc
		want    []string
		streams []string
	}{
		{&teosv2.PublicTowerServices_ServiceDesc, []string{
			"/teos.v2.PublicTowerServices/register",
			"/teos.v2.PublicTowerServices/add_appointment",
			"/teos.v2.PublicTowerServices/get_appointment",
			"/teos.v2.PublicTowerServices/get_subscription_info",
		}, nil},
		{&teosv2.PrivateTowerServices_ServiceDesc, []string{
			"/teos.v2.PrivateTowerServices/get_all_appointments",
			"/teos.v2.PrivateTowerServices/get_appointments",
			"/teos.v2.PrivateTowerServices/get_tower_info",
			"/teos.v2.PrivateTowerServices/get_users",
			"/teos.v2.PrivateTowerServices/get_user",
			"/teos.v2.PrivateTowerServices/stop",
		}, nil},
		{&teosv2.PublicTowerExtensions_ServiceDesc, []string{
			"/teos.v2.PublicTowerExtensions/add_appointments",
			"/teos.v2.PublicTowerExtensions/get_info",
			"/teos.v2.PublicTowerExtensions/delete_appointment",
		}, []string{"/teos.v2.PublicTowerExtensions/add_appointments_stream"}},
		{&teosv2.PrivateTowerExtensions_ServiceDesc, []string{
			"/teos.v2.PrivateTowerExtensions/add_user",
			"/teos.v2.PrivateTowerExtensions/remove_user",
			"/teos.v2.PrivateTowerExtensions/get_allowed_users",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.desc.ServiceName, func(t *testing.T) {
			if len(tt.desc.Streams) != len(tt.streams) {
				t.Fatalf("got %d streams, want %d", len(tt.desc.Streams), len(tt.streams))
			}
			for i, s := range tt.desc.Streams {
				if got := "/" + tt.desc.ServiceName + "/" + s.StreamName; got != tt.streams[i] || !s.ServerStreams || s.ClientStreams {
					t.Errorf("stream %d = %s (server %v, client %v), want server stream %s", i, got, s.ServerStreams, s.ClientStreams, tt.streams[i])
				}
			}
			if len(tt.desc.Methods) != len(tt.want) {
				t.Fatalf("got %d methods, want %d", len(tt.desc.Methods), len(tt.want))
			}
			for i, m := range tt.desc.Methods {
				if got := "/" + tt.desc.ServiceName + "/" + m.MethodName; got != tt.want[i] {
					t.Errorf("method %d = %s, want %s", i, got, tt.want[i])
				}
			}
		})
	}
	if teosv2.PrivateTowerServices_GetTowerInfo_FullMethodName != "/teos.v2.PrivateTowerServices/get_tower_info" {
		t.Errorf("GetTowerInfo full name = %s", teosv2.PrivateTowerServices_GetTowerInfo_FullMethodName)
	}
}

// Request and response types per RPC, as in docs/PROTOCOL.md 10.1.
func TestMethodTypes(t *testing.T) {
	tests := []struct {
		method, in, out protoreflect.FullName
	}{
		{"teos.v2.PublicTowerServices.register", "common.teos.v2.RegisterRequest", "common.teos.v2.RegisterResponse"},
		{"teos.v2.PublicTowerServices.add_appointment", "common.teos.v2.AddAppointmentRequest", "common.teos.v2.AddAppointmentResponse"},
		{"teos.v2.PublicTowerServices.get_appointment", "common.teos.v2.GetAppointmentRequest", "common.teos.v2.GetAppointmentResponse"},
		{"teos.v2.PublicTowerServices.get_subscription_info", "common.teos.v2.GetSubscriptionInfoRequest", "common.teos.v2.GetSubscriptionInfoResponse"},
		{"teos.v2.PrivateTowerServices.get_all_appointments", "google.protobuf.Empty", "teos.v2.GetAllAppointmentsResponse"},
		{"teos.v2.PrivateTowerServices.get_appointments", "teos.v2.GetAppointmentsRequest", "teos.v2.GetAppointmentsResponse"},
		{"teos.v2.PrivateTowerServices.get_tower_info", "google.protobuf.Empty", "teos.v2.GetTowerInfoResponse"},
		{"teos.v2.PrivateTowerServices.get_users", "google.protobuf.Empty", "teos.v2.GetUsersResponse"},
		{"teos.v2.PrivateTowerServices.get_user", "teos.v2.GetUserRequest", "teos.v2.GetUserResponse"},
		{"teos.v2.PrivateTowerServices.stop", "google.protobuf.Empty", "google.protobuf.Empty"},
		{"teos.v2.PublicTowerExtensions.add_appointments", "teos.v2.AddAppointmentsRequest", "teos.v2.AddAppointmentsResponse"},
		{"teos.v2.PublicTowerExtensions.get_info", "google.protobuf.Empty", "teos.v2.GetInfoResponse"},
		{"teos.v2.PublicTowerExtensions.delete_appointment", "teos.v2.DeleteAppointmentRequest", "teos.v2.DeleteAppointmentResponse"},
		{"teos.v2.PrivateTowerExtensions.add_user", "teos.v2.AddUserRequest", "teos.v2.AddUserResponse"},
		{"teos.v2.PrivateTowerExtensions.remove_user", "teos.v2.RemoveUserRequest", "teos.v2.RemoveUserResponse"},
		{"teos.v2.PrivateTowerExtensions.get_allowed_users", "google.protobuf.Empty", "teos.v2.GetAllowedUsersResponse"},
	}
	for _, tt := range tests {
		t.Run(string(tt.method), func(t *testing.T) {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(tt.method)
			if err != nil {
				t.Fatalf("FindDescriptorByName: %v", err)
			}
			md, ok := d.(protoreflect.MethodDescriptor)
			if !ok {
				t.Fatalf("%s is a %T, not a method", tt.method, d)
			}
			if md.IsStreamingClient() || md.IsStreamingServer() {
				t.Errorf("method is streaming")
			}
			if got := md.Input().FullName(); got != tt.in {
				t.Errorf("input = %s, want %s", got, tt.in)
			}
			if got := md.Output().FullName(); got != tt.out {
				t.Errorf("output = %s, want %s", got, tt.out)
			}
		})
	}
}

type wantField struct {
	name     protoreflect.Name
	number   protoreflect.FieldNumber
	kind     protoreflect.Kind
	repeated bool
	oneof    protoreflect.Name // containing oneof, if any
}

// Every message and field of docs/PROTOCOL.md 10.2; field numbers and types are the
// wire contract with rust-teos.
func TestMessageFields(t *testing.T) {
	const (
		bytesK  = protoreflect.BytesKind
		stringK = protoreflect.StringKind
		u32     = protoreflect.Uint32Kind
		msgK    = protoreflect.MessageKind
		enumK   = protoreflect.EnumKind
		boolK   = protoreflect.BoolKind
	)
	tests := []struct {
		message protoreflect.ProtoMessage
		name    protoreflect.FullName
		fields  []wantField
	}{
		{&commonv2.Appointment{}, "common.teos.v2.Appointment", []wantField{
			{"locator", 1, bytesK, false, ""},
			{"encrypted_blob", 2, bytesK, false, ""},
			{"to_self_delay", 3, u32, false, ""},
		}},
		{&commonv2.Tracker{}, "common.teos.v2.Tracker", []wantField{
			{"dispute_txid", 1, bytesK, false, ""},
			{"penalty_txid", 2, bytesK, false, ""},
			{"penalty_rawtx", 3, bytesK, false, ""},
		}},
		{&commonv2.AppointmentData{}, "common.teos.v2.AppointmentData", []wantField{
			{"appointment", 1, msgK, false, "appointment_data"},
			{"tracker", 2, msgK, false, "appointment_data"},
		}},
		{&commonv2.AddAppointmentRequest{}, "common.teos.v2.AddAppointmentRequest", []wantField{
			{"appointment", 1, msgK, false, ""},
			{"signature", 2, stringK, false, ""},
		}},
		{&commonv2.AddAppointmentResponse{}, "common.teos.v2.AddAppointmentResponse", []wantField{
			{"locator", 1, bytesK, false, ""},
			{"start_block", 2, u32, false, ""},
			{"signature", 3, stringK, false, ""},
			{"available_slots", 4, u32, false, ""},
			{"subscription_expiry", 5, u32, false, ""},
		}},
		{&commonv2.GetAppointmentRequest{}, "common.teos.v2.GetAppointmentRequest", []wantField{
			{"locator", 1, bytesK, false, ""},
			{"signature", 2, stringK, false, ""},
		}},
		{&commonv2.GetAppointmentResponse{}, "common.teos.v2.GetAppointmentResponse", []wantField{
			{"appointment_data", 1, msgK, false, ""},
			{"status", 2, enumK, false, ""},
		}},
		{&commonv2.RegisterRequest{}, "common.teos.v2.RegisterRequest", []wantField{
			{"user_id", 1, bytesK, false, ""},
		}},
		{&commonv2.RegisterResponse{}, "common.teos.v2.RegisterResponse", []wantField{
			{"user_id", 1, bytesK, false, ""},
			{"available_slots", 2, u32, false, ""},
			{"subscription_start", 3, u32, false, ""},
			{"subscription_expiry", 4, u32, false, ""},
			{"subscription_signature", 5, stringK, false, ""},
		}},
		{&commonv2.GetSubscriptionInfoRequest{}, "common.teos.v2.GetSubscriptionInfoRequest", []wantField{
			{"signature", 1, stringK, false, ""},
		}},
		{&commonv2.GetSubscriptionInfoResponse{}, "common.teos.v2.GetSubscriptionInfoResponse", []wantField{
			{"available_slots", 1, u32, false, ""},
			{"subscription_expiry", 2, u32, false, ""},
			{"locators", 3, bytesK, true, ""},
		}},
		{&teosv2.GetAppointmentsRequest{}, "teos.v2.GetAppointmentsRequest", []wantField{
			{"locator", 1, bytesK, false, ""},
		}},
		{&teosv2.GetAppointmentsResponse{}, "teos.v2.GetAppointmentsResponse", []wantField{
			{"appointments", 1, msgK, true, ""},
		}},
		{&teosv2.GetAllAppointmentsResponse{}, "teos.v2.GetAllAppointmentsResponse", []wantField{
			{"appointments", 1, msgK, true, ""},
		}},
		{&teosv2.GetUserRequest{}, "teos.v2.GetUserRequest", []wantField{
			{"user_id", 1, bytesK, false, ""},
		}},
		{&teosv2.GetUserResponse{}, "teos.v2.GetUserResponse", []wantField{
			{"available_slots", 1, u32, false, ""},
			{"subscription_expiry", 2, u32, false, ""},
			{"appointments", 3, bytesK, true, ""},
		}},
		{&teosv2.GetUsersResponse{}, "teos.v2.GetUsersResponse", []wantField{
			{"user_ids", 1, bytesK, true, ""},
		}},
		{&teosv2.NetworkAddress{}, "teos.v2.NetworkAddress", []wantField{
			{"address_type", 1, enumK, false, ""},
			{"address", 2, stringK, false, ""},
			{"port", 3, u32, false, ""},
		}},
		{&teosv2.GetTowerInfoResponse{}, "teos.v2.GetTowerInfoResponse", []wantField{
			{"tower_id", 1, bytesK, false, ""},
			{"n_registered_users", 2, u32, false, ""},
			{"n_watcher_appointments", 3, u32, false, ""},
			{"n_responder_trackers", 4, u32, false, ""},
			{"bitcoind_reachable", 5, boolK, false, ""},
			{"addresses", 6, msgK, true, ""},
			// teos-go's, after rust-teos's (docs/EXTENSIONS.md).
			{"role", 7, enumK, false, ""},
			{"instance", 8, stringK, false, ""},
			{"leader", 9, stringK, false, ""},
			{"front_ends", 10, msgK, true, ""},
		}},
		{&teosv2.FrontEndInfo{}, "teos.v2.FrontEndInfo", []wantField{
			{"name", 1, stringK, false, ""},
			{"addresses", 2, stringK, true, ""},
			{"sessions", 3, protoreflect.Uint64Kind, false, ""},
			{"state_updates", 4, protoreflect.Uint64Kind, false, ""},
			{"justice_txs", 5, protoreflect.Uint64Kind, false, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.name), func(t *testing.T) {
			md := tt.message.ProtoReflect().Descriptor()
			if md.FullName() != tt.name {
				t.Fatalf("full name = %s, want %s", md.FullName(), tt.name)
			}
			if md.Fields().Len() != len(tt.fields) {
				t.Errorf("got %d fields, want %d", md.Fields().Len(), len(tt.fields))
			}
			for _, want := range tt.fields {
				fd := md.Fields().ByName(want.name)
				if fd == nil {
					t.Errorf("field %s missing", want.name)
					continue
				}
				if fd.Number() != want.number {
					t.Errorf("%s: number = %d, want %d", want.name, fd.Number(), want.number)
				}
				if fd.Kind() != want.kind {
					t.Errorf("%s: kind = %s, want %s", want.name, fd.Kind(), want.kind)
				}
				if fd.IsList() != want.repeated {
					t.Errorf("%s: repeated = %t, want %t", want.name, fd.IsList(), want.repeated)
				}
				// Explicit presence (proto3 optional) would still be wire compatible, but the
				// spec has none, so a change here is a mistake worth flagging.
				if fd.HasOptionalKeyword() {
					t.Errorf("%s: unexpectedly optional", want.name)
				}
				var oneof protoreflect.Name
				if od := fd.ContainingOneof(); od != nil {
					oneof = od.Name()
				}
				if oneof != want.oneof {
					t.Errorf("%s: oneof = %q, want %q", want.name, oneof, want.oneof)
				}
			}
		})
	}
}

func TestEnumValues(t *testing.T) {
	tests := []struct {
		enum protoreflect.EnumDescriptor
		want []protoreflect.Name // index is the number
	}{
		{commonv2.GetAppointmentResponse_NOT_FOUND.Descriptor(), []protoreflect.Name{"NOT_FOUND", "BEING_WATCHED", "DISPUTE_RESPONDED"}},
		{teosv2.NetworkAddress_IpV4.Descriptor(), []protoreflect.Name{"IpV4", "TorV3"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.enum.FullName()), func(t *testing.T) {
			if tt.enum.Values().Len() != len(tt.want) {
				t.Fatalf("got %d values, want %d", tt.enum.Values().Len(), len(tt.want))
			}
			for n, name := range tt.want {
				v := tt.enum.Values().ByNumber(protoreflect.EnumNumber(n))
				if v == nil || v.Name() != name {
					t.Errorf("value %d = %v, want %s", n, v, name)
				}
			}
		})
	}
	if teosv2.NetworkAddress_TorV3 != 1 || commonv2.GetAppointmentResponse_DISPUTE_RESPONDED != 2 {
		t.Errorf("Go enum constants do not match the wire numbers")
	}
}
