// Package pgtest starts a throwaway PostgreSQL server for tests: initdb and postgres from
// Debian's postgresql package, in a temporary directory, listening only on 127.0.0.1 on a free
// port, stopped by pid when the test ends (also on failure) and killed by the kernel if the
// test binary dies first. Under CI (env CI set) missing binaries fail the test instead of
// skipping it.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/internal/freeport"
)

// Options tunes the server; the zero value is a durable server (fsync on).
type Options struct {
	// NoFsync turns fsync off: faster, for tests that do not measure durability.
	NoFsync bool
}

// Server is a running PostgreSQL.
type Server struct {
	t    testing.TB
	bin  string
	dir  string // owned by the server's user
	port int
	cred *syscall.Credential
	opts Options

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	dbs    atomic.Int64
}

// BinDir finds the newest /usr/lib/postgresql/*/bin (or $PG_BIN), "" if none.
func BinDir() string {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "postgres")); err == nil {
			return dirs[i]
		}
	}
	return ""
}

// Start initialises a cluster and starts its server; t's cleanup stops it and removes the
// directory.
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	bin := BinDir()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("pgtest: PostgreSQL not installed (apt-get install postgresql)")
		}
		t.Skip("pgtest: PostgreSQL not installed (apt-get install postgresql); skipping")
	}
	s := &Server{t: t, bin: bin}
	if opts != nil {
		s.opts = *opts
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	// PostgreSQL refuses to run as root: run it as the postgres user, which owns the directory.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root needs a postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	out, err := s.command("initdb", "-D", s.data(), "-U", "teos", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput()
	if err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	s.port = freePort(t)
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

func freePort(t testing.TB) int {
	p, err := freeport.Get()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return p
}

// Restart starts the server again after Stop (same data, same port) and waits until it
// accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	fsync := "on"
	if s.opts.NoFsync {
		fsync = "off"
	}
	cmd := s.command("postgres", "-D", s.data(), "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+s.dir,
		"-c", "fsync="+fsync, "-c", "max_connections=200", "-c", "shared_buffers=128MB")
	logf, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGQUIT is postgres's immediate shutdown: the test binary is gone, nothing to keep.
	btcdtest.DieWithParent(cmd, syscall.SIGQUIT)
	err = cmd.Start()
	logf.Close()
	if err != nil {
		s.t.Fatalf("pgtest: start postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(context.Background(), s.URL("postgres"))
		if err == nil {
			conn.Close(context.Background())
			return
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			s.t.Fatalf("pgtest: postgres exited at start:\n%s", log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("pgtest: postgres not ready after 60 s: %v", err)
		}
	}
}

// Stop shuts the server down (fast shutdown, by pid) and waits for it; it is a no-op when it
// is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir is the cluster's data directory.
func (s *Server) DataDir() string { return s.data() }

// URL is the connection URL of database db.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://teos@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// SocketURL is the connection URL of database db over the server's Unix socket.
func (s *Server) SocketURL(db string) string {
	return fmt.Sprintf("postgres://teos@/%s?host=%s&port=%d&sslmode=disable", db, s.dir, s.port)
}

// NewDatabase creates an empty database and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d", s.dbs.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.URL(name)
}
