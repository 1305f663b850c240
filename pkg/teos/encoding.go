package teos

// Extensions of POST /add_appointments, listed in GET /info's extensions when served.
const (
	// ExtensionCompressedUploads: the body may be sent with Content-Encoding zstd or gzip.
	ExtensionCompressedUploads = "add_appointments_compressed"
	// ExtensionStreamedUploads: with Accept: application/x-ndjson the results are streamed, one
	// line per item, as their commit groups become durable.
	ExtensionStreamedUploads = "add_appointments_stream"
)
