package config

// Defaults of the lnd port's connection caps (lnd_tower_bind). One lnd node holds a few
// connections to a tower at once (a session negotiation and a session's updates, per channel
// type), so 32 leaves room for several nodes behind one address; each connection costs a
// goroutine, buffers and a file descriptor, and each handshake two ECDH operations.
const (
	DefaultLndTowerMaxConnections           = 1024
	DefaultLndTowerMaxConnectionsPerAddress = 32
)
