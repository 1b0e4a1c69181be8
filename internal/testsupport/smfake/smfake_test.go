package smfake_test

import (
	"context"
	"hash/crc32"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"tollgate.dev/tollgate/internal/testsupport/smfake"
)

// rawClient talks to the fake with the generated stub only, so these tests
// check the wire behaviour independently of the package that uses it.
func rawClient(t *testing.T, s *smfake.Server) secretmanagerpb.SecretManagerServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return secretmanagerpb.NewSecretManagerServiceClient(conn)
}

func TestAccessSecretVersion(t *testing.T) {
	s := smfake.Start(t)
	s.SetSecret("p", "k", "1", "one")
	s.SetSecret("p", "k", "3", "three")
	s.SetSecret("p", "k", "2", "two")
	s.SetSecret("p", "added", "latest", "first")
	s.SetSecret("p", "added", "latest", "second")
	s.SetSecret("p", "hidden", "1", "h")
	s.SetSecret("p", "partly", "1", "a")
	s.SetSecret("p", "partly", "2", "b")
	s.SetSecret("denied-proj", "k", "1", "d")
	s.Deny("projects/p/secrets/hidden")
	s.Deny("projects/p/secrets/partly/versions/2")
	s.Deny("projects/denied-proj")
	c := rawClient(t, s)

	tests := []struct {
		name     string
		req      string
		code     codes.Code
		resolved string
		payload  string
	}{
		{"latest is the highest version", "projects/p/secrets/k/versions/latest", codes.OK, "projects/p/secrets/k/versions/3", "three"},
		{"explicit version", "projects/p/secrets/k/versions/2", codes.OK, "projects/p/secrets/k/versions/2", "two"},
		{"SetSecret latest adds versions", "projects/p/secrets/added/versions/latest", codes.OK, "projects/p/secrets/added/versions/2", "second"},
		{"first added version", "projects/p/secrets/added/versions/1", codes.OK, "projects/p/secrets/added/versions/1", "first"},
		{"missing version", "projects/p/secrets/k/versions/4", codes.NotFound, "", ""},
		{"missing secret", "projects/p/secrets/nope/versions/latest", codes.NotFound, "", ""},
		{"unknown alias", "projects/p/secrets/k/versions/prod", codes.NotFound, "", ""},
		{"other project", "projects/q/secrets/k/versions/1", codes.NotFound, "", ""},
		{"denied secret", "projects/p/secrets/hidden/versions/1", codes.PermissionDenied, "", ""},
		{"denied before existence", "projects/denied-proj/secrets/nope/versions/1", codes.PermissionDenied, "", ""},
		{"denied version via latest", "projects/p/secrets/partly/versions/latest", codes.PermissionDenied, "", ""},
		{"other version of a partly denied secret", "projects/p/secrets/partly/versions/1", codes.OK, "projects/p/secrets/partly/versions/1", "a"},
		{"empty name", "", codes.InvalidArgument, "", ""},
		{"no version", "projects/p/secrets/k", codes.InvalidArgument, "", ""},
		{"version zero", "projects/p/secrets/k/versions/0", codes.InvalidArgument, "", ""},
		{"bad secret id", "projects/p/secrets/k.v/versions/1", codes.InvalidArgument, "", ""},
		{"regional", "projects/p/locations/eu/secrets/k/versions/1", codes.InvalidArgument, "", ""},
		{"trailing slash", "projects/p/secrets/k/versions/1/", codes.InvalidArgument, "", ""},
		{"sm scheme is client-side only", "sm://k", codes.InvalidArgument, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.AccessSecretVersion(t.Context(), &secretmanagerpb.AccessSecretVersionRequest{Name: tt.req})
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.code)
			}
			if tt.code != codes.OK {
				return
			}
			if resp.GetName() != tt.resolved {
				t.Errorf("name = %q, want %q", resp.GetName(), tt.resolved)
			}
			data := resp.GetPayload().GetData()
			if string(data) != tt.payload {
				t.Errorf("payload = %q, want %q", data, tt.payload)
			}
			crc := resp.GetPayload().DataCrc32C
			if crc == nil || *crc != int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))) {
				t.Errorf("DataCrc32C = %v, want the CRC32C of the payload", crc)
			}
		})
	}
	if got, want := s.Calls(), len(tests); got != want {
		t.Errorf("Calls = %d, want %d (invalid calls count too)", got, want)
	}
	if got := s.Conns(); got != 1 {
		t.Errorf("Conns = %d, want 1", got)
	}
}

func TestCorruptChecksums(t *testing.T) {
	s := smfake.Start(t)
	s.SetSecret("p", "k", "1", "v")
	s.CorruptChecksums()
	resp, err := rawClient(t, s).AccessSecretVersion(t.Context(), &secretmanagerpb.AccessSecretVersionRequest{Name: "projects/p/secrets/k/versions/1"})
	if err != nil {
		t.Fatal(err)
	}
	if crc := resp.GetPayload().DataCrc32C; crc == nil || *crc == int64(crc32.Checksum([]byte("v"), crc32.MakeTable(crc32.Castagnoli))) {
		t.Errorf("DataCrc32C = %v, want a wrong checksum", crc)
	}
}

func TestDelayHonoursDeadline(t *testing.T) {
	s := smfake.Start(t)
	s.SetSecret("p", "k", "1", "v")
	s.SetDelay(5 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := rawClient(t, s).AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: "projects/p/secrets/k/versions/1"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	// A bound, not a benchmark: the delay is 5s.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("call took %v", d)
	}
	if s.Calls() != 1 {
		t.Errorf("Calls = %d, want 1", s.Calls())
	}
}

func TestNothingCalled(t *testing.T) {
	s := smfake.Start(t)
	if s.Calls() != 0 || s.Conns() != 0 {
		t.Errorf("fresh server: Calls = %d, Conns = %d", s.Calls(), s.Conns())
	}
	if s.Addr() == "" {
		t.Error("empty Addr")
	}
}
