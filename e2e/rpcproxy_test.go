package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// rpcCall is one bitcoind JSON-RPC request as a test proxy sees it.
type rpcCall struct {
	ID     json.RawMessage   `json:"id"`
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
}

// rpcProxy forwards teosd's bitcoind JSON-RPC calls to a node; a test's intercept sees each
// call first and may answer it itself.
type rpcProxy struct{ srv *httptest.Server }

// startRPCProxy starts a proxy to target. intercept returns true when it has answered the call
// (or cut its connection); otherwise the call goes on to the node.
func startRPCProxy(t *testing.T, target string, intercept func(w http.ResponseWriter, r *http.Request, call *rpcCall) bool) *rpcProxy {
	t.Helper()
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	p := &rpcProxy{srv: httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var call rpcCall
		_ = json.Unmarshal(body, &call)
		if intercept(w, r, &call) {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))}
	t.Cleanup(p.srv.Close)
	return p
}

// port is the proxy's port, for teosd's --btcrpcport.
func (p *rpcProxy) port() string {
	u, _ := url.Parse(p.srv.URL)
	return u.Port()
}
