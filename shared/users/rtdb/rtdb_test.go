package rtdb_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/rtdb"
	"tollgate.dev/tollgate/shared/users/userstest"
)

const emulatorEnv = "FIREBASE_DATABASE_EMULATOR_HOST"

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// fakeOptions reach srv as an emulator through its http://127.0.0.1 URL;
// the real emulator variable, if set in the environment, is cleared so that
// the SDK does not go there instead.
func fakeOptions(t *testing.T, srv *rtdbfake.Server) rtdb.Options {
	t.Setenv(emulatorEnv, "")
	return rtdb.Options{
		URL:         srv.URL(),
		CacheTTL:    5 * time.Second,
		FlushEvery:  time.Hour, // tests flush when they mean to
		CallTimeout: 5 * time.Second,
		Logf:        t.Logf,
	}
}

// tlsOptions reach srv as production is reached: an https URL, with an HTTP
// client trusting the test certificate instead of Google credentials.
func tlsOptions(t *testing.T, srv *rtdbfake.Server) rtdb.Options {
	o := fakeOptions(t, srv)
	o.URL = srv.TLSURL()
	o.ClientOptions = srv.ClientOptions()
	return o
}

// envOptions leave the emulator to the SDK: a production URL and
// FIREBASE_DATABASE_EMULATOR_HOST pointing at srv.
func envOptions(t *testing.T, srv *rtdbfake.Server) rtdb.Options {
	o := fakeOptions(t, srv)
	t.Setenv(emulatorEnv, srv.Host()+"?ns=tollgate-env")
	o.URL = "https://tollgate-env.firebaseio.com"
	return o
}

// emulatorOptions use a real emulator from FIREBASE_DATABASE_EMULATOR_HOST,
// with a fresh ref per test.
func emulatorOptions(t *testing.T, host string) rtdb.Options {
	hostPort, query, _ := strings.Cut(host, "?")
	q, _ := url.ParseQuery(query)
	ns := q.Get("ns")
	if ns == "" {
		ns = "tollgate-test"
	}
	ref := regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(t.Name(), "_")
	return rtdb.Options{
		URL:         "http://" + hostPort + "?ns=" + ns,
		UsersRef:    "tollgate-test/" + ref + "-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		CacheTTL:    5 * time.Second,
		FlushEvery:  time.Hour,
		CallTimeout: 10 * time.Second,
		Logf:        t.Logf,
	}
}

func open(t *testing.T, o rtdb.Options) *rtdb.Store {
	t.Helper()
	s, err := rtdb.Open(ctx(t), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	if host := os.Getenv(emulatorEnv); host != "" {
		t.Logf("against the emulator at %s", host)
		userstest.Run(t, func(t *testing.T) users.Store { return open(t, emulatorOptions(t, host)) })
		return
	}
	modes := []struct {
		name string
		opts func(*testing.T, *rtdbfake.Server) rtdb.Options
	}{
		{"EmulatorURL", fakeOptions},
		{"HTTPSClient", tlsOptions},
		{"EmulatorEnv", envOptions},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			userstest.Run(t, func(t *testing.T) users.Store {
				o := m.opts(t, rtdbfake.Start(t))
				o.FlushEvery = 20 * time.Millisecond // background flushes race the explicit ones
				return open(t, o)
			})
		})
	}
}

// clock is an injected time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func create(t *testing.T, s users.Store, token string, edit func(u *users.User)) *users.User {
	t.Helper()
	u, err := s.Modify(ctx(t), token, true, func(u *users.User, exists bool) error {
		if exists {
			return fmt.Errorf("%s exists", token)
		}
		*u = *users.New(token, users.Normal, t0, map[string]int64{"gpt4o": 1_000_000})
		if edit != nil {
			edit(u)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("create %s: %v", token, err)
	}
	return u
}

func mustGet(t *testing.T, s users.Store, token string) *users.User {
	t.Helper()
	u, err := s.Get(ctx(t), token)
	if err != nil {
		t.Fatalf("Get(%s): %v", token, err)
	}
	return u
}

func mustLookup(t *testing.T, s users.Store, token string) *users.User {
	t.Helper()
	u, err := users.LookupCopy(ctx(t), s, token)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", token, err)
	}
	return u
}

// wantUnavailable checks err is the client-safe outage error.
func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	e := users.AsError(err)
	if e.Code != users.CodeUnavailable || e.Message != "The user database is unavailable; try again shortly." || e.Err == nil {
		t.Fatalf("%s: got %#v (%v), want CodeUnavailable wrapping the cause", what, e, err)
	}
}
