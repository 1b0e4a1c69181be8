package users_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

// raceStore runs before(token) once, on the first Modify of that token:
// another writer landing between the import's read and its write.
type raceStore struct {
	*memory.Store
	mu     sync.Mutex
	before map[string]func()
	lists  int
	gets   int
}

func (s *raceStore) Modify(ctx context.Context, token string, create bool, fn users.ModifyFunc) (*users.User, error) {
	s.mu.Lock()
	f := s.before[token]
	delete(s.before, token)
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return s.Store.Modify(ctx, token, create, fn)
}

func (s *raceStore) List(ctx context.Context) ([]*users.User, error) {
	s.mu.Lock()
	s.lists++
	s.mu.Unlock()
	return s.Store.List(ctx)
}

func (s *raceStore) Get(ctx context.Context, token string) (*users.User, error) {
	s.mu.Lock()
	s.gets++
	s.mu.Unlock()
	return s.Store.Get(ctx, token)
}

func newRaceService(t *testing.T) (*users.Service, *raceStore) {
	t.Helper()
	s := &raceStore{Store: memory.New(), before: map[string]func(){}}
	return &users.Service{Store: s, Defaults: map[string]int64{"gpt4o": 10}, Now: func() time.Time { return t0 }}, s
}

func importDoc(t *testing.T, doc string) []users.Patch {
	t.Helper()
	ps, err := users.ParsePatchList([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// An entry valid on the user as read, invalid on the user as it is when
// its write comes, is reported (409-like), and the user is left as the
// other writer made it.
func TestImportEntryNoLongerApplies(t *testing.T) {
	svc, s := newRaceService(t)
	tmp := users.New("tok-tmp", users.Temporary, t0, nil)
	tmp.ExpiresAt = t0.Add(time.Hour).UnixMilli()
	if _, err := s.Store.Modify(ctx(t), "tok-tmp", true, func(u *users.User, _ bool) error { *u = *tmp; return nil }); err != nil {
		t.Fatal(err)
	}
	s.before["tok-tmp"] = func() {
		// Someone drops the expiry while the import runs.
		if _, err := s.Store.Modify(ctx(t), "tok-tmp", false, func(u *users.User, _ bool) error {
			u.Type, u.ExpiresAt = users.Normal, 0
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	rep, err := svc.ImportEach(ctx(t), importDoc(t, `{"users":[{"token":"tok-new"},{"token":"tok-tmp","type":"temporary"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != 1 || rep.Failed[0].Index != 1 || rep.Failed[0].Err.Code != users.CodeConflict ||
		!strings.Contains(rep.Failed[0].Err.Message, "no longer applies") || rep.Failed[0].Err.Issues[0].Path != "users[1].expiresAt" {
		t.Fatalf("failed = %+v", rep.Failed)
	}
	if u, _ := s.Store.Get(ctx(t), "tok-tmp"); u.Type != users.Normal {
		t.Fatalf("tok-tmp = %+v", u)
	}
	if len(rep.Written) != 1 || rep.Written[0].Token != "tok-new" {
		t.Fatalf("written = %v", rep.Written)
	}

	// Import (the UI's call) turns the report into one error naming the
	// entry, after writing the others.
	if _, err := s.Store.Modify(ctx(t), "tok-tmp", false, func(u *users.User, _ bool) error { *u = *tmp; return nil }); err != nil {
		t.Fatal(err)
	}
	s.before["tok-tmp"] = func() { _ = s.Store.Delete(ctx(t), "tok-tmp") }
	written, err := svc.Import(ctx(t), importDoc(t, `{"users":[{"token":"tok-tmp","nickname":"x"},{"token":"tok-other"}]}`))
	e := users.AsError(err)
	if e.Code != users.CodeConflict || e.Message != "Imported 1 of 2 users. Not written: users[0]: The user was deleted during the import; it is not re-created." {
		t.Fatalf("Import = %v", err)
	}
	if len(written) != 1 || written[0].Token != "tok-other" {
		t.Fatalf("written = %v", written)
	}
}

// A large import reads every user once (paged List), a small one reads
// its users one by one; both validate against the stored users.
func TestImportReadsBeforeValidating(t *testing.T) {
	for _, n := range []int{3, 120} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			svc, s := newRaceService(t)
			var b strings.Builder
			b.WriteString(`{"users":[`)
			for i := range n {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `{"token":"tok-%d","nickname":"n%d"}`, i, i)
			}
			b.WriteString(`]}`)
			rep, err := svc.ImportEach(ctx(t), importDoc(t, b.String()))
			if err != nil || len(rep.Written) != n || len(rep.Failed) != 0 {
				t.Fatalf("import: %v, %d written, %+v", err, len(rep.Written), rep.Failed)
			}
			for i, u := range rep.Written {
				if u.Token != fmt.Sprintf("tok-%d", i) {
					t.Fatalf("written[%d] = %s: not the request's order", i, u.Token)
				}
			}
			wantLists, wantGets := 0, n
			if n > 50 {
				wantLists, wantGets = 1, 0
			}
			if s.lists != wantLists || s.gets != wantGets {
				t.Fatalf("%d Lists and %d Gets, want %d and %d", s.lists, s.gets, wantLists, wantGets)
			}
		})
	}
}

// A charge landing between the import's first read and its write stays on
// top of the entry's counts, as the entry is reported written.
func TestImportKeepsAChargeLandingMeanwhile(t *testing.T) {
	svc, st := newRaceService(t)
	ctx := context.Background()
	if _, err := st.Modify(ctx, "alice", true, func(u *users.User, _ bool) error {
		*u = *users.New("alice", users.Normal, t0, map[string]int64{"gpt4o": 1000})
		u.TokenCounts["gpt4o"] = 100
		u.PromptCount = 1
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ps := importDoc(t, `{"users":[{"token":"alice","type":"normal","createdAt":1,"promptCount":1,"tokenCounts":{"gpt4o":40},"tokenLimits":{"gpt4o":1000},"nickname":"A"}]}`)
	st.before["alice"] = func() {
		if err := st.RecordUsage(ctx, "alice", users.Usage{Family: "gpt4o", Tokens: 500, At: t0}); err != nil {
			t.Error(err)
		}
	}
	rep, err := svc.ImportEach(ctx, ps)
	if err != nil || len(rep.Failed) != 0 {
		t.Fatalf("import: %v, failed %v", err, rep)
	}
	u, _ := st.Get(ctx, "alice")
	if got := u.TokenCounts["gpt4o"]; got != 540 || u.PromptCount != 2 || u.Nickname != "A" {
		t.Errorf("after a 500-token charge during the import of count 40: count %d, prompts %d, nickname %q; want 540, 2, A", got, u.PromptCount, u.Nickname)
	}
}
