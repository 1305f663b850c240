package store_test

import (
	"path/filepath"
	"testing"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/storetest"
)

func TestConformanceBolt(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() store.Engine {
		path := filepath.Join(t.TempDir(), "teos.db")
		return func() store.Engine {
			s, err := store.Open(path, nil)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		}
	})
}
