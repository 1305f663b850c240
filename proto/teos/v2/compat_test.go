package teosv2_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// A client built from rust-teos v0.2's GetTowerInfoResponse (fields 1 to 6) decodes teos-go's
// answer to the same values and skips the extension fields as unknown.
func TestTowerInfoDecodesAsRustTeos(t *testing.T) {
	fdp := protodesc.ToFileDescriptorProto(teosv2.File_teos_v2_tower_services_proto)
	for _, m := range fdp.MessageType {
		if m.GetName() != "GetTowerInfoResponse" {
			continue
		}
		var old []*descriptorpb.FieldDescriptorProto
		for _, f := range m.Field {
			if f.GetNumber() <= 6 {
				old = append(old, f)
			}
		}
		if len(old) != 6 {
			t.Fatalf("rust-teos's six fields: found %d", len(old))
		}
		m.Field = old
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	oldMsg := fd.Messages().ByName("GetTowerInfoResponse")

	full := &teosv2.GetTowerInfoResponse{
		TowerId: []byte{2, 3}, NRegisteredUsers: 4, NWatcherAppointments: 5, NResponderTrackers: 6, BitcoindReachable: true,
		Addresses: []*teosv2.NetworkAddress{{AddressType: teosv2.NetworkAddress_TorV3, Address: "x.onion", Port: 9814}},
		Role:      teosv2.TowerRole_TOWER_ROLE_FOLLOWER, Instance: "b", Leader: "a",
		FrontEnds: []*teosv2.FrontEndInfo{{Name: "lnd", Addresses: []string{"02@h:9911"}, Sessions: 1, StateUpdates: 2, JusticeTxs: 3}},
	}
	raw, err := proto.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	got := dynamicpb.NewMessage(oldMsg)
	if err := proto.Unmarshal(raw, got); err != nil {
		t.Fatal(err)
	}
	field := func(name protoreflect.Name) protoreflect.Value { return got.Get(oldMsg.Fields().ByName(name)) }
	addr := field("addresses").List().Get(0).Message()
	if string(field("tower_id").Bytes()) != "\x02\x03" || field("n_registered_users").Uint() != 4 ||
		field("n_watcher_appointments").Uint() != 5 || field("n_responder_trackers").Uint() != 6 ||
		!field("bitcoind_reachable").Bool() || field("addresses").List().Len() != 1 ||
		addr.Get(addr.Descriptor().Fields().ByName("address")).String() != "x.onion" {
		t.Fatalf("decoded as rust-teos: %v", got)
	}
	if len(got.GetUnknown()) == 0 {
		t.Fatal("extension fields not left as unknown fields")
	}
}
