package clientaddr

import (
	"net/http/httptest"
	"testing"
)

// A request over the onion listener is the onion client, whatever its peer and headers: tor
// adds no headers, so an X-Forwarded-For there was written by the client itself.
func TestClientOverTor(t *testing.T) {
	proxies, err := ParseProxies([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/ping", nil)
	r.RemoteAddr = "127.0.0.1:4242"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := proxies.Client(r); got.Onion || !got.Forwarded || got.String() != "198.51.100.1" {
		t.Fatalf("on the public listener: %+v", got)
	}
	r = r.WithContext(WithOnion(r.Context(), nil))
	got := proxies.Client(r)
	if !got.Onion || got.Forwarded || got.Addr.IsValid() || got.String() != "onion" {
		t.Fatalf("over Tor: %+v %q, want the onion client", got, got.String())
	}
}
