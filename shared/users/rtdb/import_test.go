package rtdb_test

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
)

// importService is the admin side's users.Service on s.
func importService(s users.Store) *users.Service {
	return &users.Service{Store: s, Defaults: map[string]int64{"gpt4o": 1000}, Now: func() time.Time { return t0 }}
}

func patches(t *testing.T, doc string) []users.Patch {
	t.Helper()
	ps, err := users.ParsePatchList([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// onceBeforeWrite runs fn once, just before the first conditional write to
// token's node (between the import's read of the user and its write).
func onceBeforeWrite(srv *rtdbfake.Server, token string, fn func()) *atomic.Bool {
	var done atomic.Bool
	srv.OnWrite(func(method, path string, conditional bool) {
		if conditional && strings.HasSuffix(path, "/"+token) && done.CompareAndSwap(false, true) {
			fn()
		}
	})
	return &done
}

// A user purged (the maintenance endpoint) between the import's read and
// its write is not re-created, not even in part: the import reports it and
// writes the other entries.
func TestImportDoesNotResurrectADeletedUser(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	admin := open(t, fakeOptions(t, srv)) // another instance: the scheduler's purge
	create(t, s, "tok-gone", nil)
	fired := onceBeforeWrite(srv, "tok-gone", func() {
		if err := admin.Delete(ctx(t), "tok-gone"); err != nil {
			t.Errorf("purge: %v", err)
		}
	})
	rep, err := importService(s).ImportEach(ctx(t), patches(t, `{"users":[
		{"token":"tok-gone","nickname":"back?"},
		{"token":"tok-fresh","nickname":"new"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !fired.Load() {
		t.Fatal("the purge never ran between read and write")
	}
	if len(rep.Failed) != 1 || rep.Failed[0].Token != "tok-gone" || rep.Failed[0].Index != 0 || rep.Failed[0].Err.Code != users.CodeNotFound {
		t.Fatalf("failures = %+v, want tok-gone not found", rep.Failed)
	}
	if !strings.Contains(rep.Failed[0].Err.Message, "deleted during the import; it is not re-created") {
		t.Fatalf("failure message %q", rep.Failed[0].Err.Message)
	}
	if got := srv.Data("users/tok-gone"); got != nil {
		t.Fatalf("deleted user written back: %v", got)
	}
	if len(rep.Written) != 1 || rep.Written[0].Token != "tok-fresh" {
		t.Fatalf("written = %v", rep.Written)
	}
	// The new user is a whole record: defaults, then the entry.
	fresh := srv.Data("users/tok-fresh").(map[string]any)
	for _, k := range []string{"token", "type", "createdAt", "tokenLimits", "nickname"} {
		if _, ok := fresh[k]; !ok {
			t.Fatalf("new user stored without %s: %v", k, fresh)
		}
	}
}

// A charge flushed by a proxy instance between the import's read and its
// write is kept: the import's write is conditional, so it is redone on the
// charged user, changing only the entry's fields.
func TestImportKeepsAConcurrentCharge(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	proxy := open(t, fakeOptions(t, srv))
	create(t, s, "tok-busy", func(u *users.User) {
		u.PromptCount = 5
		u.TokenCounts = map[string]int64{"gpt4o": 100}
	})
	fired := onceBeforeWrite(srv, "tok-busy", func() {
		if err := proxy.RecordUsage(ctx(t), "tok-busy", users.Usage{Family: "gpt4o", Tokens: 50, At: t0}); err != nil {
			t.Errorf("charge: %v", err)
		}
		if err := proxy.Flush(ctx(t)); err != nil {
			t.Errorf("flush: %v", err)
		}
	})
	rep, err := importService(s).ImportEach(ctx(t), patches(t, `{"users":[
		{"token":"tok-busy","nickname":"imported","tokenLimits":{"gpt4o":9000}}]}`))
	if err != nil || len(rep.Failed) != 0 {
		t.Fatalf("import: %v %+v", err, rep)
	}
	if !fired.Load() {
		t.Fatal("the charge never landed between read and write")
	}
	u := mustGet(t, s, "tok-busy")
	if u.PromptCount != 6 || u.TokenCounts["gpt4o"] != 150 {
		t.Fatalf("charge lost: promptCount %d, tokenCounts %v", u.PromptCount, u.TokenCounts)
	}
	if u.Nickname != "imported" || u.TokenLimits["gpt4o"] != 9000 {
		t.Fatalf("import lost: %+v", u)
	}
	if w := rep.Written[0]; w.PromptCount != 6 || w.Nickname != "imported" {
		t.Fatalf("reported as written: %+v", w)
	}
}

// A user created by someone else after the import read it as missing gets
// the entry applied on top, never replaced by a fresh record.
func TestImportOntoAUserCreatedMeanwhile(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	other := open(t, fakeOptions(t, srv))
	onceBeforeWrite(srv, "tok-race", func() {
		create(t, other, "tok-race", func(u *users.User) { u.PromptCount = 7; u.AdminNote = "made elsewhere" })
	})
	rep, err := importService(s).ImportEach(ctx(t), patches(t, `{"users":[{"token":"tok-race","nickname":"imported"}]}`))
	if err != nil || len(rep.Failed) != 0 {
		t.Fatalf("import: %v %+v", err, rep)
	}
	u := mustGet(t, s, "tok-race")
	if u.PromptCount != 7 || u.AdminNote != "made elsewhere" || u.Nickname != "imported" {
		t.Fatalf("got %+v", u)
	}
}

// Validation is all or nothing: one bad entry (here one that is invalid
// only on its user's stored state) and not a single write is sent.
func TestImportValidatesEverythingFirst(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	create(t, s, "tok-normal", nil)
	var writes atomic.Int64
	srv.OnWrite(func(string, string, bool) { writes.Add(1) })
	_, err := importService(s).ImportEach(ctx(t), patches(t, `{"users":[
		{"token":"tok-a","nickname":"fine"},
		{"token":"tok-normal","type":"temporary"},
		{"token":"tok-b","type":"temporary"}]}`))
	e := users.AsError(err)
	if e.Code != users.CodeInvalid || len(e.Issues) < 2 {
		t.Fatalf("err = %v, want every issue", err)
	}
	paths := map[string]bool{}
	for _, is := range e.Issues {
		paths[strings.SplitN(is.Path, ".", 2)[0]] = true
	}
	if !paths["users[1]"] || !paths["users[2]"] || paths["users[0]"] {
		t.Fatalf("issues %+v", e.Issues)
	}
	if n := writes.Load(); n != 0 {
		t.Fatalf("%d writes after a refused import", n)
	}
	if srv.Data("users/tok-a") != nil {
		t.Fatal("tok-a written")
	}
}

// Charges landing while an import's transaction runs make it run again
// (its conditional write refused), each time on the latest user: what was
// charged since the import read the user is added to the entry's counts
// on that latest state, once. The entry's own counts must not carry what
// an earlier run added (the patch's map was the user's, and grew).
func TestImportRunAgainCountsChargesOnce(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	create(t, s, "tok-imp", func(u *users.User) {
		u.PromptCount = 4
		u.TokenCounts = map[string]int64{"gpt4o": 400}
	})
	// Two charges of 50 from other instances, each just before one of the
	// import's conditional writes.
	var charges atomic.Int32
	srv.OnWrite(func(method, path string, conditional bool) {
		if conditional && strings.HasSuffix(path, "/tok-imp") {
			if n := charges.Add(1); n <= 2 {
				srv.SetData("users/tok-imp/promptCount", 4+n)
				srv.SetData("users/tok-imp/tokenCounts/gpt4o", 400+50*n)
			}
		}
	})
	rep, err := importService(s).ImportEach(ctx(t), patches(t, `{"users":[
		{"token":"tok-imp","promptCount":1,"tokenCounts":{"gpt4o":100}}]}`))
	if err != nil || len(rep.Failed) != 0 {
		t.Fatalf("import: %v %+v", err, rep)
	}
	if n := charges.Load(); n != 3 {
		t.Fatalf("%d conditional writes, want 3 (two refused by the charges): the case did not happen", n)
	}
	u := mustGet(t, s, "tok-imp")
	if u.PromptCount != 3 || u.TokenCounts["gpt4o"] != 200 {
		t.Fatalf("after the import: promptCount %d, gpt4o %d; want 3 and 200 (the entry and the two charges made during the import, once)",
			u.PromptCount, u.TokenCounts["gpt4o"])
	}
}

// An import's write that the database made but whose answer was lost is
// sent again by the SDK, and the transaction runs again on the user its
// own first write left. Usage charged during the import must stay on top
// of the entry's counts once, not be measured again against that write:
// an entry lower than the old count (an older export restored) lost the
// charge, a higher one added its own difference twice.
func TestImportWhoseAnswerWasLostKeepsTheChargeOnce(t *testing.T) {
	for _, tt := range []struct {
		name       string
		entry      int64 // the entry's gpt4o count; the user has 400 before, 50 charged during the import
		wantTokens int64
	}{
		{"an older export", 100, 150},
		{"a newer export", 700, 750},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := rtdbfake.Start(t)
			s := open(t, fakeOptions(t, srv))
			create(t, s, "tok-imp", func(u *users.User) {
				u.PromptCount = 4
				u.TokenCounts = map[string]int64{"gpt4o": 400}
			})
			fired := onceBeforeWrite(srv, "tok-imp", func() { // another instance's charge of 50
				srv.SetData("users/tok-imp/promptCount", 5)
				srv.SetData("users/tok-imp/tokenCounts/gpt4o", 450)
			})
			// The first conditional write is refused (the charge came first);
			// the second, made on the charged user, loses its answer.
			var writes atomic.Int32
			srv.LoseAnswers(func(method, path string, conditional bool) bool {
				if !conditional || !strings.HasSuffix(path, "/tok-imp") {
					return false
				}
				return writes.Add(1) == 2
			})
			rep, err := importService(s).ImportEach(ctx(t), patches(t, `{"users":[
				{"token":"tok-imp","promptCount":1,"tokenCounts":{"gpt4o":`+strconv.FormatInt(tt.entry, 10)+`}}]}`))
			if err != nil || len(rep.Failed) != 0 {
				t.Fatalf("import: %v %+v", err, rep)
			}
			if !fired.Load() || writes.Load() < 3 {
				t.Fatalf("charge landed: %v, conditional writes: %d; the case did not happen", fired.Load(), writes.Load())
			}
			u := mustGet(t, s, "tok-imp")
			if u.PromptCount != 2 || u.TokenCounts["gpt4o"] != tt.wantTokens {
				t.Fatalf("after the import: promptCount %d, gpt4o %d; want 2 and %d (the entry and the charge made during the import, once)",
					u.PromptCount, u.TokenCounts["gpt4o"], tt.wantTokens)
			}
		})
	}
}
