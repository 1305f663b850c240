package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/blockfirst"
)

// While a block is processed, POSTs (the requests that cost a signature recovery) wait;
// GETs (/ping, /info) do not.
func TestBlocksFirstHandlerHoldsPostsOnly(t *testing.T) {
	g := blockfirst.New(time.Hour)
	h := blocksFirstHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }), g)
	serve := func(method string) <-chan int {
		out := make(chan int, 1)
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, "/add_appointment", nil))
			out <- rec.Code
		}()
		return out
	}
	g.Begin()
	post := serve(http.MethodPost)
	select {
	case code := <-serve(http.MethodGet):
		if code != http.StatusTeapot {
			t.Fatalf("GET answered %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a GET waited for the block")
	}
	select {
	case <-post:
		t.Fatal("a POST was served while a block was processed")
	case <-time.After(50 * time.Millisecond):
	}
	g.End()
	select {
	case code := <-post:
		if code != http.StatusTeapot {
			t.Fatalf("POST answered %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the POST was not served after the block")
	}
	mux := http.NewServeMux()
	if blocksFirstHandler(mux, nil) != http.Handler(mux) {
		t.Error("a nil gate should leave the handler as it is")
	}
}
