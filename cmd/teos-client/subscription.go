package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"

	"github.com/teos-go/teos/pkg/client"
)

func (a *app) getSubscriptionInfo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get_subscription_info", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	maxLocators := fs.Int("max-locators", client.DefaultMaxLocators, "refuse an answer with more locators than this (the client holds 16 bytes each)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("get_subscription_info: %v", err)
	}
	if fs.NArg() != 0 || *maxLocators <= 0 {
		return usagef("get_subscription_info takes no arguments but --max-locators N (N > 0)")
	}
	a.clientOpts = append(a.clientOpts, client.WithMaxLocators(*maxLocators))
	t, _, _, err := a.connect(ctx, false)
	if err != nil {
		return err
	}
	info, err := t.GetSubscriptionInfo(ctx)
	if err != nil {
		return err
	}
	return a.printSubscription(info)
}

// printSubscription prints info as printJSON would (json.MarshalIndent), one locator at a
// time: a list of hex strings built first would take five times the memory of the answer's
// locators, which may number millions (pkg/client.DefaultMaxLocators).
func (a *app) printSubscription(info *client.SubscriptionInfo) error {
	w := bufio.NewWriterSize(a.stdout, 64<<10)
	fmt.Fprintf(w, "{\n  \"available_slots\": %d,\n  \"subscription_expiry\": %d,\n  \"locators\": [", info.AvailableSlots, info.SubscriptionExpiry)
	var line [64]byte // ",\n    \"" + 32 hex + "\""
	for i, l := range info.Locators {
		b := line[:0]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    \""...)
		b = hex.AppendEncode(b, l[:])
		b = append(b, '"')
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	if len(info.Locators) > 0 {
		_, _ = w.WriteString("\n  ") // bufio keeps the first error for Flush
	}
	_, _ = w.WriteString("]\n}\n")
	return w.Flush()
}
