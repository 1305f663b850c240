package httpapi

import "time"

// SetStreamWriteWindow shortens the streamed answers' write window for a test.
func SetStreamWriteWindow(d time.Duration) (restore func()) {
	old := streamWriteWindow
	streamWriteWindow = d
	return func() { streamWriteWindow = old }
}
