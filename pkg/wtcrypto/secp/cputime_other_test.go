//go:build !linux

package secp

import "time"

func threadCPU() time.Duration { return 0 }
