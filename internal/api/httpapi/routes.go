package httpapi

import (
	"net/http"
	"strings"
)

// route is one endpoint of the public API. The table below is the only list of routes:
// the rate limit and the metrics learn a request's endpoint from it (Admission,
// Exchange), so adding a route is adding one entry.
type route struct {
	// name is the first path segment the route answers on (warp::path without
	// path::end: /register/x reaches register).
	name   string
	method string
	// bodyLimit is the most bytes a POST body may have (warp's content_length_limit).
	bodyLimit int64
	// extension routes exist only with Config.Ext; without it they get 405 as any other path.
	extension bool
	// unlimited routes skip the Gate: /ping must answer whatever the rate limit says, or a
	// client marks the tower unreachable.
	unlimited bool
	serve     func(h *handler, w http.ResponseWriter, r *http.Request, body []byte)
}

// Body limits in bytes, per route (teos/src/api/http.rs).
const (
	registerBodyLimit            = 87
	addAppointmentBodyLimit      = 2048
	getAppointmentBodyLimit      = 178
	getSubscriptionInfoBodyLimit = 127
	// teos-go extension: up to 1000 items of at most 2048 bytes plus the framing.
	addAppointmentsBodyLimit = 2_200_000
)

// MaxBodyBytes is the largest body any route takes; the server sizes a large body's read
// deadline up to it.
const MaxBodyBytes = addAppointmentsBodyLimit

var routes = []route{
	// The teos v0.2 endpoints.
	{name: "register", method: http.MethodPost, bodyLimit: registerBodyLimit, serve: (*handler).register},
	{name: "add_appointment", method: http.MethodPost, bodyLimit: addAppointmentBodyLimit, serve: (*handler).addAppointment},
	{name: "get_appointment", method: http.MethodPost, bodyLimit: getAppointmentBodyLimit, serve: (*handler).getAppointment},
	{name: "get_subscription_info", method: http.MethodPost, bodyLimit: getSubscriptionInfoBodyLimit, serve: (*handler).getSubscriptionInfo},
	{name: "ping", method: http.MethodGet, unlimited: true, serve: (*handler).ping},
	// teos-go extensions (extensions.go).
	{name: "add_appointments", method: http.MethodPost, bodyLimit: addAppointmentsBodyLimit, extension: true, serve: (*handler).addAppointments},
	{name: "info", method: http.MethodGet, extension: true, serve: (*handler).info},
	{name: "delete_appointment", method: http.MethodPost, bodyLimit: deleteAppointmentBodyLimit, extension: true, serve: (*handler).deleteAppointment},
}

// Endpoints are the names of every route in the table, extensions included, then
// EndpointOther: the complete set of Exchange.Endpoint and Admission.Endpoint values.
func Endpoints() []string {
	names := make([]string, 0, len(routes)+1)
	for _, rt := range routes {
		names = append(names, rt.name)
	}
	return append(names, EndpointOther)
}

// route finds r's route. endpoint is the route's name when the path names one this
// handler serves, whatever the method (so a POST /ping counts as ping), else
// EndpointOther; rt is nil unless the method matches too.
func (h *handler) route(r *http.Request) (rt *route, endpoint string) {
	name := firstSegment(r.URL.EscapedPath())
	endpoint = EndpointOther
	for i := range h.routes {
		if h.routes[i].name != name {
			continue
		}
		endpoint = name
		if h.routes[i].method == r.Method {
			return &h.routes[i], endpoint
		}
	}
	return nil, endpoint
}

// firstSegment returns the path up to its second slash, without the leading one.
func firstSegment(path string) string {
	path, ok := strings.CutPrefix(path, "/")
	if !ok {
		return ""
	}
	segment, _, _ := strings.Cut(path, "/")
	return segment
}

// ping answers GET /ping with an empty 200, as rust-teos does.
func (h *handler) ping(w http.ResponseWriter, _ *http.Request, _ []byte) {
	w.WriteHeader(http.StatusOK)
}
