package teos

// Version is teos-go's release, reported by the public API's GET /info.
const Version = "0.1.0"

// ExtensionAddAppointments names the batch upload extension (POST /add_appointments) in the
// extensions list of GET /info.
const ExtensionAddAppointments = "add_appointments"
