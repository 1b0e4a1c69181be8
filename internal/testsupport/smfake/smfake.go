// Package smfake is an in-process Secret Manager gRPC server for tests. It
// speaks the real wire protocol, so code under test uses the real
// cloud.google.com/go/secretmanager client pointed at Addr() as an emulator.
//
// Only AccessSecretVersion is implemented; it follows the real service's
// observable behaviour: name validation (InvalidArgument), IAM before
// existence (PermissionDenied even for missing secrets), NotFound, the
// resolved version name for "latest", and a CRC32C of the payload.
package smfake

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// versionName is the shape the real service accepts for AccessSecretVersion
// (global secrets only: regional ones live on regional endpoints).
var versionName = regexp.MustCompile(`^projects/([^/]+)/secrets/([A-Za-z0-9_-]{1,255})/versions/([^/]+)$`)

// versionID is "latest", a version number, or an alias.
var versionID = regexp.MustCompile(`^(latest|[1-9][0-9]*|[A-Za-z][A-Za-z0-9_-]{0,62})$`)

// projectID accepts project IDs and numbers (the real service takes both).
var projectID = regexp.MustCompile(`^[a-z0-9][a-z0-9:.-]{0,99}$`)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer

	t     testing.TB
	addr  string
	calls atomic.Int64
	conns atomic.Int64

	mu       sync.Mutex
	versions map[string]map[int]string // "projects/P/secrets/S" -> version -> payload
	denied   map[string]bool
	delay    time.Duration
	badCRC   bool
}

// Start listens on 127.0.0.1:0 and serves until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smfake: listen: %v", err)
	}
	s := &Server{
		t:        t,
		addr:     lis.Addr().String(),
		versions: map[string]map[int]string{},
		denied:   map[string]bool{},
	}
	gs := grpc.NewServer()
	secretmanagerpb.RegisterSecretManagerServiceServer(gs, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Serve returns nil after Stop, or ErrServerStopped when Stop came
		// first (a test that never called); anything else is a broken setup.
		err := gs.Serve(&countingListener{Listener: lis, n: &s.conns})
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("smfake: serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		// Stop (not GracefulStop) cancels delayed handlers instead of waiting for them.
		gs.Stop()
		<-done
	})
	return s
}

// Addr is host:port, for SECRET_MANAGER_EMULATOR_HOST.
func (s *Server) Addr() string { return s.addr }

// SetSecret stores payload as the given version of projects/project/secrets/name.
// version is a positive number, or "latest" (or "") to add the next version,
// as AddSecretVersion would.
func (s *Server) SetSecret(project, name, version, payload string) {
	s.t.Helper()
	secret := "projects/" + project + "/secrets/" + name
	if !versionName.MatchString(secret + "/versions/1") {
		s.t.Fatalf("smfake: SetSecret: invalid secret name %q", secret)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.versions[secret]
	if vs == nil {
		vs = map[int]string{}
		s.versions[secret] = vs
	}
	n := 0
	switch version {
	case "", "latest":
		n = highest(vs) + 1
	default:
		var err error
		n, err = strconv.Atoi(version)
		if err != nil || n < 1 {
			s.t.Fatalf("smfake: SetSecret: version %q is neither a positive number nor \"latest\"", version)
		}
	}
	vs[n] = payload
}

// Deny makes AccessSecretVersion answer PermissionDenied for resourceName,
// which may be a project ("projects/P"), a secret ("projects/P/secrets/S") or
// a version name (as requested, or as resolved from "latest").
func (s *Server) Deny(resourceName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[resourceName] = true
}

// SetDelay makes every call wait d (or until its context ends) before answering.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// CorruptChecksums makes every answer carry a wrong DataCrc32C, as if the
// payload had been damaged in transit.
func (s *Server) CorruptChecksums() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badCRC = true
}

// Calls is the number of AccessSecretVersion calls received, valid or not.
func (s *Server) Calls() int { return int(s.calls.Load()) }

// Conns is the number of TCP connections accepted: one per client that
// actually talked to the server.
func (s *Server) Conns() int { return int(s.conns.Load()) }

// AccessSecretVersion implements secretmanagerpb.SecretManagerServiceServer.
func (s *Server) AccessSecretVersion(ctx context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	s.calls.Add(1)

	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}

	name := req.GetName()
	m := versionName.FindStringSubmatch(name)
	if m == nil || !projectID.MatchString(m[1]) || !versionID.MatchString(m[3]) {
		return nil, status.Errorf(codes.InvalidArgument,
			"Invalid resource field value in the request: name %q must match projects/*/secrets/*/versions/*", name)
	}
	project, version := m[1], m[3]
	secret := "projects/" + project + "/secrets/" + m[2]

	s.mu.Lock()
	defer s.mu.Unlock()

	// The real service checks IAM before existence, so a caller without
	// access cannot probe which secrets exist.
	if s.denied["projects/"+project] || s.denied[secret] || s.denied[name] {
		return nil, status.Errorf(codes.PermissionDenied,
			"Permission 'secretmanager.versions.access' denied for resource '%s' (or it may not exist).", name)
	}
	vs := s.versions[secret]
	n := 0
	if version == "latest" {
		n = highest(vs)
		if n == 0 {
			return nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", secret)
		}
	} else {
		n, _ = strconv.Atoi(version) // aliases parse to 0: the fake has none, so NotFound
	}
	payload, ok := vs[n]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret Version [%s] not found.", name)
	}
	resolved := fmt.Sprintf("%s/versions/%d", secret, n)
	if s.denied[resolved] {
		return nil, status.Errorf(codes.PermissionDenied,
			"Permission 'secretmanager.versions.access' denied for resource '%s' (or it may not exist).", name)
	}
	data := []byte(payload)
	crc := int64(crc32.Checksum(data, castagnoli))
	if s.badCRC {
		crc ^= 1
	}
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name:    resolved,
		Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &crc},
	}, nil
}

func highest(vs map[int]string) int {
	n := 0
	for v := range vs {
		n = max(n, v)
	}
	return n
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}
