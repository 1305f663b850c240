//go:build !cgo || purego

package secp

const implementation = NamePureGo

var (
	recoverImpl = pureRecover
	signImpl    = pureSign
)
