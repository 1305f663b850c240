package main

// This teosd is cmd/teosd (the other files here are links to it) with lnd's watchtower
// protocol compiled in: lnd_tower_bind turns it on. It is a separate module so that the main
// module does not depend on lnd.
import _ "github.com/teos-go/teos/lnd/lndtower"
