package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users/rtdb"
)

// storedCounts reads a user's counts from the fake database itself.
func storedCounts(t *testing.T, srv *rtdbfake.Server, token, family string) (prompts, tokens int64) {
	t.Helper()
	m, _ := srv.Data("users/" + token).(map[string]any)
	if m == nil {
		t.Fatalf("user %s is not in the database", token)
	}
	p, _ := m["promptCount"].(float64)
	tc, _ := m["tokenCounts"].(map[string]any)
	n, _ := tc[family].(float64)
	return int64(p), int64(n)
}

// The database fails on reads (down, or slower than the call deadline):
// the proxy answers 503 in the provider's shape without calling the
// upstream, the admin API answers 503, both within the deadline; once the
// database is back, the same requests succeed.
func TestDatabaseFailsOnRead(t *testing.T) {
	noLeaks(t)
	clearEmulatorEnv(t)
	srv := rtdbfake.Start(t)
	fakes := startFakes(t)
	// Instance a creates the user; instance b has never read it, so its
	// requests must go to the database.
	a := newStack(t, stackOptions{fakes: fakes, store: rtdbStore(t, srv, time.Hour, 300*time.Millisecond, &syncBuffer{})})
	blogs := &syncBuffer{}
	b := newStack(t, stackOptions{fakes: fakes, store: rtdbStore(t, srv, time.Hour, 300*time.Millisecond, blogs)})
	pc := provCases[0]
	var tokens []string

	for _, fault := range []struct {
		name  string
		start func()
		stop  func()
	}{
		{"down", func() { srv.SetDown(true) }, func() { srv.SetDown(false) }},
		{"slower than the deadline", func() { srv.SetDelay(2 * time.Second) }, func() { srv.SetDelay(0) }},
	} {
		t.Run(fault.name, func(t *testing.T) {
			tok := a.createUser("")
			tokens = append(tokens, tok)
			before := fakes[pc.kind].Count()
			fault.start()
			defer fault.stop()
			start := time.Now()
			r := b.do(http.MethodPost, b.proxy.URL+pc.path, pc.body, pc.auth(tok))
			msg := providerError(t, pc, r, http.StatusServiceUnavailable)
			if !strings.Contains(msg, "database is unavailable") {
				t.Errorf("message %q", msg)
			}
			for _, path := range []string{"/admin/users/" + tok, "/admin/users"} {
				if r := b.do(http.MethodGet, b.admin.URL+path, "", bearer(adminKey)); r.status != http.StatusServiceUnavailable {
					t.Errorf("admin GET %s during the outage: %d %s", path, r.status, r.body)
				}
			}
			if r := b.do(http.MethodPut, b.admin.URL+"/admin/users/"+tok, `{"nickname":"x"}`, bearer(adminKey)); r.status != http.StatusServiceUnavailable {
				t.Errorf("admin PUT during the outage: %d %s", r.status, r.body)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("four requests took %s to fail with a 300ms deadline", took)
			}
			if n := fakes[pc.kind].Count(); n != before {
				t.Errorf("the upstream was called %d times without a user", n-before)
			}
			fault.stop()
			if r := b.do(http.MethodPost, b.proxy.URL+pc.path, pc.body, pc.auth(tok)); r.status != http.StatusOK {
				t.Fatalf("after the outage: %d %s", r.status, r.body)
			}
			b.settle()
		})
	}
	if err := b.d.Store.Flush(t.Context()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	for _, tok := range tokens {
		if p := b.user(tok).PromptCount; p != 1 {
			t.Errorf("prompt count %d, want 1 (the request after the outage)", p)
		}
	}
	for _, s := range allSecrets {
		if strings.Contains(b.logs.String(), s) || strings.Contains(blogs.String(), s) {
			t.Errorf("a secret reached the log during the outage")
		}
	}
}

// Usage flushes fail (database down, or slower than the call deadline)
// while requests go on from the cache: nothing is lost and nothing is
// counted twice; the usage lands once the database is back.
func TestFlushSurvivesDatabaseFaults(t *testing.T) {
	noLeaks(t)
	clearEmulatorEnv(t)
	for _, fault := range []struct {
		name       string
		start, end func(*rtdbfake.Server)
	}{
		{"down", func(s *rtdbfake.Server) { s.SetDown(true) }, func(s *rtdbfake.Server) { s.SetDown(false) }},
		{"slower than the deadline", func(s *rtdbfake.Server) { s.SetDelay(time.Second) }, func(s *rtdbfake.Server) { s.SetDelay(0) }},
	} {
		t.Run(fault.name, func(t *testing.T) {
			srv := rtdbfake.Start(t)
			logs := &syncBuffer{}
			// During the slow fault each request tries its durable charge
			// persistTries times (about a second), so the requests below
			// outlast a few seconds' cache; past USER_CACHE_TTL a lookup
			// must read the user, which the fault refuses (503, as a user
			// never cached is refused in TestDatabaseFailsOnRead). A long TTL
			// keeps this test on what it shows: usage kept and flushed once.
			s := newStack(t, stackOptions{store: openRTDB(t, srv, rtdb.Options{CacheTTL: time.Minute,
				FlushEvery: 50 * time.Millisecond, CallTimeout: 250 * time.Millisecond}, logs)})
			tok := s.createUser("")
			pc := provCases[1]
			// The first request admits the client's IP: a direct write.
			if r := s.do(http.MethodPost, s.proxy.URL+pc.path, pc.body, pc.auth(tok)); r.status != http.StatusOK {
				t.Fatalf("first request: %d %s", r.status, r.body)
			}
			waitFor(t, "the first flush", func() bool { p, _ := storedCounts(t, srv, tok, pc.family); return p == 1 })

			fault.start(srv)
			const during = 6
			for i := range during {
				path, body := pc.path, pc.body
				if i%2 == 1 {
					path, body = pc.streamPathBody()
				}
				if r := s.do(http.MethodPost, s.proxy.URL+path, body, pc.auth(tok)); r.status != http.StatusOK {
					t.Fatalf("request %d during the fault: %d %s", i, r.status, r.body)
				}
			}
			waitFor(t, "a failed flush to be logged", func() bool { return strings.Contains(logs.String(), "flushing usage failed") })
			if p, _ := storedCounts(t, srv, tok, pc.family); p != 1 {
				t.Fatalf("stored prompt count %d during the fault, want 1", p)
			}
			fault.end(srv)
			waitFor(t, "the kept usage to be flushed", func() bool {
				p, _ := storedCounts(t, srv, tok, pc.family)
				return p == 1+during
			})
			s.settle()
			// More flushes change nothing: nothing is applied twice.
			for range 3 {
				if err := s.d.Store.Flush(t.Context()); err != nil {
					t.Fatalf("flush after recovery: %v", err)
				}
			}
			p, n := storedCounts(t, srv, tok, pc.family)
			if p != 1+during || n != (1+during)*fullCharge {
				t.Fatalf("stored %d prompts, %d tokens; want %d, %d", p, n, 1+during, (1+during)*fullCharge)
			}
		})
	}
}

// admin edits made while a proxy instance holds unflushed usage are kept
// alongside it: a quota set and usage charged meanwhile both land.
func TestAdminEditsAndUsageDoNotOverwriteEachOther(t *testing.T) {
	noLeaks(t)
	clearEmulatorEnv(t)
	srv := rtdbfake.Start(t)
	fakes := startFakes(t)
	p := newStack(t, stackOptions{fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
	adm := newStack(t, stackOptions{fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
	tok := adm.createUser("")
	pc := provCases[2]
	for range 3 {
		if r := p.do(http.MethodPost, p.proxy.URL+pc.path, pc.body, pc.auth(tok)); r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	if r := adm.do(http.MethodPut, adm.admin.URL+"/admin/users/"+tok, `{"tokenLimits":{"gemini-flash":5000},"nickname":"edited"}`, bearer(adminKey)); r.status != http.StatusOK {
		t.Fatalf("admin edit: %d %s", r.status, r.body)
	}
	if err := p.d.Store.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	u := adm.user(tok)
	if u.PromptCount != 3 || u.TokenCounts[pc.family] != 3*fullCharge || u.TokenLimits[pc.family] != 5000 || u.Nickname != "edited" {
		t.Fatalf("after an edit and a flush: %d prompts, %v counts, %v limits, nickname %q", u.PromptCount, u.TokenCounts, u.TokenLimits, u.Nickname)
	}
}
