package rtdb_test

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/rtdb"
)

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return strconv.Itoa(port)
}

func TestOpenUnreachableFailsPromptlyNamingTheURL(t *testing.T) {
	t.Setenv(emulatorEnv, "")
	url := "http://127.0.0.1:" + closedPort(t) + "?ns=nowhere"
	start := time.Now()
	_, err := rtdb.Open(ctx(t), rtdb.Options{URL: url, CallTimeout: 500 * time.Millisecond})
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Open took %s to fail (CallTimeout 500ms)", took)
	}
	for _, want := range []string{"FIREBASE_RTDB_URL=" + url, "cannot reach", "check the URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestOpenRejectsBadSettings(t *testing.T) {
	t.Setenv(emulatorEnv, "")
	srv := rtdbfake.Start(t)
	cases := []struct {
		name  string
		o     rtdb.Options
		wants []string
	}{
		{"no URL", rtdb.Options{}, []string{"FIREBASE_RTDB_URL is required"}},
		{"unknown scheme", rtdb.Options{URL: "ftp://db.example.com"}, []string{"FIREBASE_RTDB_URL=ftp://db.example.com", "https://<db>.firebaseio.com"}},
		{"emulator without ns", rtdb.Options{URL: "http://127.0.0.1:9000"}, []string{"FIREBASE_RTDB_URL", "?ns=<database name>"}},
		{"emulator at a remote IP", rtdb.Options{URL: "http://10.1.2.3:9000?ns=x"}, []string{"FIREBASE_RTDB_URL", "host name"}},
		{"bad users ref", rtdb.Options{URL: srv.URL(), UsersRef: "users.v2"}, []string{"FIREBASE_USERS_REF_NAME"}},
		{"negative TTL", rtdb.Options{URL: srv.URL(), CacheTTL: -time.Second}, []string{"USER_CACHE_TTL"}},
		{"key not JSON", rtdb.Options{URL: srv.TLSURL(), CredentialsJSON: []byte("c2VjcmV0")}, []string{"FIREBASE_KEY", "not JSON"}},
		{"key not a service account", rtdb.Options{URL: srv.TLSURL(), CredentialsJSON: []byte(`{"type":"authorized_user","refresh_token":"s3cr3t"}`)}, []string{"FIREBASE_KEY", "service_account"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Requests()
			_, err := rtdb.Open(ctx(t), tc.o)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			for _, want := range tc.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("error leaks the key: %v", err)
			}
			if n := srv.Requests() - before; n != 0 {
				t.Errorf("a bad setting still made %d requests", n)
			}
		})
	}
}

// Refused credentials name FIREBASE_KEY (or the default credentials).
func TestOpenRefusedCredentials(t *testing.T) {
	srv := rtdbfake.Start(t)
	srv.RequireToken("a-token-this-client-lacks")
	_, err := rtdb.Open(ctx(t), tlsOptions(t, srv))
	if err == nil {
		t.Fatal("Open succeeded though the database answers 401")
	}
	for _, want := range []string{"refused the credentials", "FIREBASE_KEY", "FIREBASE_RTDB_URL=" + srv.TLSURL()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// The SDK's own emulator handling: FIREBASE_DATABASE_EMULATOR_HOST with a
// production URL sends the "owner" token and the ns parameter.
func TestEmulatorEnvUsesOwnerTokenAndNamespace(t *testing.T) {
	srv := rtdbfake.Start(t)
	srv.RequireToken("owner")
	s := open(t, envOptions(t, srv))
	create(t, s, "tok-env", nil)
	if got := srv.Namespaces(); len(got) != 1 || got[0] != "tollgate-env" {
		t.Fatalf("namespaces seen: %v", got)
	}
	if srv.Data("users/tok-env") == nil {
		t.Fatal("user not written to the emulator")
	}
}

func TestEmulatorEnvTheSDKCannotUse(t *testing.T) {
	srv := rtdbfake.Start(t)
	_, port, _ := net.SplitHostPort(srv.Host())
	t.Setenv(emulatorEnv, "127.0.0.1:"+port) // an IP, and no ?ns=
	_, err := rtdb.Open(ctx(t), rtdb.Options{URL: "https://x.firebaseio.com"})
	if err == nil || !strings.Contains(err.Error(), emulatorEnv) || !strings.Contains(err.Error(), "localhost:9000?ns=") {
		t.Fatalf("got %v, want an error explaining %s", err, emulatorEnv)
	}
}

// A database slower than CallTimeout fails calls promptly with
// CodeUnavailable; it does not hang them.
func TestSlowDatabaseIsUnavailablePromptly(t *testing.T) {
	srv := rtdbfake.Start(t)
	o := fakeOptions(t, srv)
	o.CallTimeout = 200 * time.Millisecond
	s := open(t, o)
	create(t, s, "tok-slow", nil)
	srv.SetDelay(3 * time.Second)
	defer srv.SetDelay(0)

	calls := map[string]func() error{
		"Lookup": func() error { _, err := users.LookupCopy(ctx(t), s, "tok-uncached"); return err },
		"Get":    func() error { _, err := s.Get(ctx(t), "tok-slow"); return err },
		"List":   func() error { _, err := s.List(ctx(t)); return err },
		"Modify": func() error {
			_, err := s.Modify(ctx(t), "tok-slow", false, func(u *users.User, _ bool) error { u.Nickname = "x"; return nil })
			return err
		},
		"Delete": func() error { return s.Delete(ctx(t), "tok-slow") },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if took := time.Since(start); took > 1500*time.Millisecond {
			t.Errorf("%s took %s with CallTimeout 200ms", name, took)
		}
		wantUnavailable(t, name, err)
	}
}

// An outage during a flush keeps the usage; it is written once the
// database is back, exactly once.
func TestOutageDuringFlushKeepsUsage(t *testing.T) {
	srv := rtdbfake.Start(t)
	o := fakeOptions(t, srv)
	o.CallTimeout = 300 * time.Millisecond
	s := open(t, o)
	create(t, s, "tok-out", nil)
	create(t, open(t, o), "tok-out2", nil) // another instance: s has no copy
	mustLookup(t, s, "tok-out")
	charge := func(tok string, n int) {
		for range n {
			if err := s.RecordUsage(ctx(t), tok, users.Usage{Family: "gpt4o", Tokens: 10, At: t0}); err != nil {
				t.Fatal(err)
			}
		}
	}
	charge("tok-out", 5)
	charge("tok-out2", 1)

	srv.SetDown(true)
	start := time.Now()
	wantUnavailable(t, "Flush during outage", s.Flush(ctx(t)))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Flush took %s during the outage (CallTimeout 300ms)", took)
	}
	_, err := users.LookupCopy(ctx(t), s, "tok-out2") // not cached: needs the database
	wantUnavailable(t, "uncached Lookup during outage", err)
	if u := mustLookup(t, s, "tok-out"); u.PromptCount != 5 { // cached
		t.Fatalf("pending usage lost from the view: %d prompts", u.PromptCount)
	}
	charge("tok-out", 2)

	srv.SetDown(false)
	if err := s.Flush(ctx(t)); err != nil {
		t.Fatalf("Flush after recovery: %v", err)
	}
	if u := mustGet(t, s, "tok-out"); u.PromptCount != 7 || u.TokenCounts["gpt4o"] != 70 {
		t.Fatalf("after recovery: %d prompts, %v", u.PromptCount, u.TokenCounts)
	}
	if u := mustGet(t, s, "tok-out2"); u.PromptCount != 1 {
		t.Fatalf("after recovery, second user: %d prompts", u.PromptCount)
	}
	if u := mustLookup(t, s, "tok-out"); u.PromptCount != 7 {
		t.Fatalf("Lookup after the flush counts %d prompts, want 7 (no double count)", u.PromptCount)
	}
}

// A conditional write the database made but whose answer was lost is sent
// again by the SDK itself (it retries a write on a network error or a
// 503); the second try finds the value changed (412) and the transaction
// runs again on the value its own first write left. An enter run again on
// its own entry is the request it admitted, not a second one beside it:
// with one request in flight allowed, it must not be refused by its own
// lease (which would then hold the key's place for the whole lease).
func TestEnterWhoseAnswerWasLostIsAdmitted(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	var lost, writes atomic.Int32
	srv.LoseAnswers(func(method, path string, conditional bool) bool {
		if !strings.Contains(path, "_limits/") {
			return false
		}
		writes.Add(1)
		return conditional && lost.CompareAndSwap(0, 1)
	})
	e := users.LimitsEntry{ID: "text-a", Kind: "text", Now: t0, Window: time.Minute,
		Rate: 4, Inflight: 1, LeaseUntil: t0.Add(10 * time.Minute)}
	d, err := s.EnterLimits(ctx(t), "tok-lost", e)
	if err != nil {
		t.Fatal(err)
	}
	if lost.Load() != 1 || writes.Load() < 2 {
		t.Fatalf("%d answers lost in %d writes: the case did not happen", lost.Load(), writes.Load())
	}
	if !d.RateOK || !d.InflightOK || d.Remaining != 3 {
		t.Fatalf("the enter whose answer was lost: %+v, want admitted with 3 requests left", d)
	}
	if err := s.LeaveLimits(ctx(t), "tok-lost", "text-a", false); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Second)
	d, err = s.EnterLimits(ctx(t), "tok-lost", users.LimitsEntry{ID: "text-b", Kind: "text", Now: now, Window: time.Minute,
		Rate: 4, Inflight: 1, LeaseUntil: now.Add(10 * time.Minute)})
	if err != nil || !d.InflightOK || !d.RateOK || d.Remaining != 2 {
		t.Fatalf("the next request after the first left: %+v, %v; want admitted with 2 left", d, err)
	}
}

// A new user's write that the database made but whose answer was lost is
// sent again by the SDK, and the transaction runs again on the user its
// own first write created: that is the user it made, not a collision of
// random tokens. Else the administrator is told to try again while the
// user exists, with a token no one was given.
func TestCreateWhoseAnswerWasLostIsCreated(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	var lost atomic.Bool
	srv.LoseAnswers(func(method, path string, conditional bool) bool {
		return conditional && strings.HasPrefix(path, "/users/") && lost.CompareAndSwap(false, true)
	})
	svc := &users.Service{Store: s, Now: func() time.Time { return t0 }}
	u, err := svc.Create(ctx(t), users.Patch{})
	if !lost.Load() {
		t.Fatal("no answer was lost: the case did not happen")
	}
	if err != nil {
		t.Fatalf("Create whose answer was lost: %v, want the user it made", err)
	}
	list, err := s.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Token != u.Token {
		t.Fatalf("users stored: %d, want the one created (%s)", len(list), u.Token)
	}
}

// A mark whose write the database made but whose answer was lost is sent
// again by the SDK; its transaction runs again on the mark its own first
// write made. That is this call's mark: it reports true (the one caller
// that got it), not "already marked" (a proof of work then answered as a
// replay of itself).
func TestMarkWhoseAnswerWasLostIsOurs(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	var lost atomic.Bool
	srv.LoseAnswers(func(method, path string, conditional bool) bool {
		return conditional && strings.Contains(path, "_marks/") && lost.CompareAndSwap(false, true)
	})
	ok, err := s.Mark(ctx(t), "pow-lost", t0.Add(time.Hour))
	if !lost.Load() {
		t.Fatal("no answer was lost: the case did not happen")
	}
	if err != nil || !ok {
		t.Fatalf("Mark whose answer was lost: %v, %v; want true, the mark its own write made", ok, err)
	}
	if ok, err := s.Mark(ctx(t), "pow-lost", t0.Add(time.Hour)); err != nil || ok {
		t.Fatalf("a second Mark of the key: %v, %v; want false", ok, err)
	}
}

// A save of the live IP lists over the version read, which the database
// made but whose answer was lost, is sent again by the SDK and refused
// (412: the version changed, by this very save). The lists then hold
// what was saved: the save is answered as made, not as one someone else
// came before ("nothing was written").
func TestListsSaveWhoseAnswerWasLostIsMade(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	l, err := s.IPLists(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var lost atomic.Bool
	srv.LoseAnswers(func(method, path string, conditional bool) bool {
		return conditional && strings.Contains(path, "_iplists") && lost.CompareAndSwap(false, true)
	})
	l.Blacklist = []string{"203.0.113.0/24"}
	l.UpdatedAt = t0.UnixMilli()
	err = s.SetIPLists(ctx(t), l)
	if !lost.Load() {
		t.Fatal("no answer was lost: the case did not happen")
	}
	if err != nil {
		t.Fatalf("save whose answer was lost: %v, want made", err)
	}
	if got, err := s.IPLists(ctx(t)); err != nil || !slices.Equal(got.Blacklist, l.Blacklist) {
		t.Fatalf("lists after the save: %+v, %v", got, err)
	}
}
