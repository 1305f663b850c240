package main

import (
	"context"
	"encoding/hex"
	"io"

	"google.golang.org/protobuf/types/known/emptypb"

	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// teos-go's admin extensions (service PrivateTowerExtensions): the registration allowlist.
const usageExtensions = `  adduser <user_id>         allow a user id to register (registration = "allowlist")
  removeuser <user_id>      stop allowing it (its current subscription is kept)
  getallowedusers           the allowed user ids
`

func init() {
	check := func(a []string) error { _, err := parseUserID(a[0]); return err }
	commands["adduser"] = command{args: 1, check: check, ext: addUser}
	commands["removeuser"] = command{args: 1, check: check, ext: removeUser}
	commands["getallowedusers"] = command{args: 0, ext: getAllowedUsers}
}

func addUser(ctx context.Context, c teosv2.PrivateTowerExtensionsClient, args []string, stdout io.Writer) error {
	id, _ := parseUserID(args[0]) // checked before connecting
	r, err := c.AddUser(ctx, &teosv2.AddUserRequest{UserId: id[:]})
	if err != nil {
		return err
	}
	return printJSON(stdout, map[string]any{"user_id": id.String(), "allowed": true, "changed": r.GetChanged()})
}

func removeUser(ctx context.Context, c teosv2.PrivateTowerExtensionsClient, args []string, stdout io.Writer) error {
	id, _ := parseUserID(args[0])
	r, err := c.RemoveUser(ctx, &teosv2.RemoveUserRequest{UserId: id[:]})
	if err != nil {
		return err
	}
	return printJSON(stdout, map[string]any{"user_id": id.String(), "allowed": false, "changed": r.GetChanged()})
}

func getAllowedUsers(ctx context.Context, c teosv2.PrivateTowerExtensionsClient, _ []string, stdout io.Writer) error {
	r, err := c.GetAllowedUsers(ctx, &emptypb.Empty{})
	if err != nil {
		return err
	}
	ids := make([]string, len(r.GetUserIds()))
	for i, b := range r.GetUserIds() {
		ids[i] = hex.EncodeToString(b)
	}
	return printJSON(stdout, ids)
}
