// Package rtdb is the users.Store on the Firebase Realtime Database, through
// the real firebase.google.com/go/v4 client, shared by many function
// instances.
//
// Consistency (for the README):
//   - Each instance caches a user it has read for CacheTTL (USER_CACHE_TTL):
//     an admin change made anywhere reaches every instance within that time.
//   - Usage is added up per user in each instance and flushed every
//     FlushEvery, and on Close (SIGTERM), as one ETag-conditional transaction
//     per user: concurrent instances and admin edits never overwrite each
//     other. A failed flush keeps the usage and retries it; usage for a user
//     deleted meanwhile is dropped, not resurrected. A flush whose answer is
//     lost in transit is counted once: its number in the user's
//     usageFlushed tells a retry it is there (codec.go).
//   - Single-user changes (admin edits, disable, IP admission) are
//     transactions on the user node: retried on conflict, no lost updates.
//   - Imports (users.Service.ImportEach) validate every entry first, then
//     write each user with its own Modify: a concurrent charge or edit is
//     kept, no record is written in part, and a user deleted during the
//     import is not re-created.
//   - One instance's quota checks do not see other instances' unflushed usage:
//     a quota can be overshot by at most what the other instances charged
//     within one FlushEvery.
//   - Every database call has a deadline (CallTimeout); an outage is answered
//     with 503 "The user database is unavailable; try again shortly.".
package rtdb

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/db"
	"firebase.google.com/go/v4/errorutils"
	"google.golang.org/api/option"

	"tollgate.dev/tollgate/shared/users"
)

// emulatorEnv is the variable the Firebase SDK itself reads: when set (and
// FIREBASE_RTDB_URL is an https URL) it talks to that emulator instead.
const emulatorEnv = "FIREBASE_DATABASE_EMULATOR_HOST"

// Options configure Open.
type Options struct {
	// URL is FIREBASE_RTDB_URL: https://<db>.firebaseio.com or
	// https://<db>.<region>.firebasedatabase.app; for the emulator also
	// http://host:port?ns=<db> (or host:port?ns=<db>).
	URL string
	// CredentialsJSON is the decoded FIREBASE_KEY (service-account JSON); nil
	// uses Application Default Credentials. Not used with the emulator.
	CredentialsJSON []byte
	// UsersRef is FIREBASE_USERS_REF_NAME, default "users".
	UsersRef string
	// CacheTTL is USER_CACHE_TTL: how long Lookup trusts its cached copy
	// (0: Lookup always reads).
	CacheTTL time.Duration
	// FlushEvery is the usage flush period, default 1s.
	FlushEvery time.Duration
	// CallTimeout is the deadline of each database call, default 5s.
	CallTimeout time.Duration
	// Now is the clock of the cache, default time.Now.
	Now func() time.Time
	// ClientOptions are added to the SDK's (tests: a custom HTTP client).
	ClientOptions []option.ClientOption
	// Logf receives warnings (failed flushes, dropped usage); may be nil.
	Logf func(format string, args ...any)
}

// Store is the RTDB users.Store. Open starts its flusher; Close stops it.
type Store struct {
	o     Options
	users *db.Ref
	locks [64]sync.Mutex // this instance's writes to one user, in turn
	// flushing is held by the flush under way: one at a time, and a
	// flush with a deadline (Close's) waits for its turn no longer.
	flushing chan struct{}

	mu       sync.Mutex
	cache    map[string]*entry
	seq      uint64            // increases with every cache install
	pending  map[string]*delta // usage not yet sent, or sent without an answer
	inflight map[string]*delta // usage being flushed now
	// writer names this Store in the users' usageFlushed (random, so
	// that instances never share one); lastFlush is its latest flush's
	// number there.
	writer    string
	lastFlush int64

	stopFlusher context.CancelFunc
	flusherDone chan struct{}
	closeOnce   sync.Once
}

var (
	_ users.Store      = (*Store)(nil)
	_ users.IPRecorder = (*Store)(nil)
)

// Open connects to the database, checks that it answers (one shallow read
// of the root, within CallTimeout) and starts the usage flusher.
func Open(ctx context.Context, o Options) (*Store, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	sdkURL, emulator, err := databaseURL(o.URL)
	if err != nil {
		return nil, err
	}
	emulator = emulator || os.Getenv(emulatorEnv) != ""

	opts := append([]option.ClientOption{}, o.ClientOptions...)
	projectID := databaseName(o.URL)
	if o.CredentialsJSON != nil && !emulator {
		// The emulator takes the SDK's "owner" token; the SDK refuses a
		// second credential next to it.
		pid, err := checkServiceAccount(o.CredentialsJSON)
		if err != nil {
			return nil, err
		}
		if pid != "" {
			projectID = pid
		}
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, o.CredentialsJSON))
	}
	// The client keeps the context it was made with to fetch OAuth tokens
	// later: it must outlive the request that happens to open the store.
	clientCtx := context.WithoutCancel(ctx)
	// The App serves only the database, which needs no project ID; giving
	// one spares NewApp a credentials probe (the metadata server off GCP).
	app, err := firebase.NewApp(clientCtx, &firebase.Config{DatabaseURL: sdkURL, ProjectID: projectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("rtdb: Firebase app for FIREBASE_RTDB_URL=%s: %w", o.URL, err)
	}
	client, err := app.Database(clientCtx)
	if err != nil {
		return nil, databaseError(o.URL, err)
	}

	s := &Store{
		o:        o,
		users:    client.NewRef(o.UsersRef),
		cache:    map[string]*entry{},
		pending:  map[string]*delta{},
		inflight: map[string]*delta{},
		flushing: make(chan struct{}, 1),
		writer:   newWriterID(),
	}
	cctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
	defer cancel()
	var root any
	if err := client.NewRef("/").GetShallow(cctx, &root); err != nil {
		return nil, s.openError(err, o.CredentialsJSON != nil && !emulator)
	}

	fctx, stop := context.WithCancel(context.Background())
	s.stopFlusher = stop
	s.flusherDone = make(chan struct{})
	go s.runFlusher(fctx)
	return s, nil
}

func (o Options) withDefaults() (Options, error) {
	if strings.TrimSpace(o.URL) == "" {
		return o, errors.New("rtdb: FIREBASE_RTDB_URL is required for the firebase_rtdb store (https://<db>.firebaseio.com)")
	}
	if o.UsersRef == "" {
		o.UsersRef = "users"
	}
	if !validRef(o.UsersRef) {
		return o, fmt.Errorf("rtdb: FIREBASE_USERS_REF_NAME=%q is not a database path: segments separated by '/', without . $ # [ ] or control characters", o.UsersRef)
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 5 * time.Second
	}
	if o.CacheTTL < 0 {
		return o, fmt.Errorf("rtdb: USER_CACHE_TTL=%s must not be negative", o.CacheTTL)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o, nil
}

func validRef(ref string) bool {
	n := 0
	for _, seg := range strings.Split(ref, "/") {
		if seg == "" {
			continue
		}
		n++
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; c < 0x20 || c == 0x7f || strings.IndexByte(".$#[]", c) >= 0 {
				return false
			}
		}
	}
	return n > 0
}

// databaseURL maps FIREBASE_RTDB_URL to what the SDK takes. https URLs pass
// as they are. The SDK takes an emulator only as host:port?ns=<db> and
// refuses an IP literal host (url.ParseRequestURI cannot parse it), so
// http://127.0.0.1:9000?ns=db becomes localhost:9000?ns=db, the same
// loopback.
func databaseURL(raw string) (sdk string, emulator bool, err error) {
	bad := func(why string) error {
		return fmt.Errorf("rtdb: FIREBASE_RTDB_URL=%s: %s; want https://<db>.firebaseio.com, https://<db>.<region>.firebasedatabase.app or, for the emulator, http://host:port?ns=<db>", raw, why)
	}
	if strings.HasPrefix(raw, "https://") {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "", false, bad("not a URL")
		}
		return strings.TrimRight(raw, "/"), false, nil
	}
	rest := strings.TrimPrefix(raw, "http://")
	if strings.Contains(rest, "://") {
		return "", false, bad("unknown scheme")
	}
	u, err := url.Parse("http://" + rest)
	if err != nil || u.Host == "" || u.Port() == "" {
		return "", false, bad("an emulator address needs host:port")
	}
	ns := u.Query().Get("ns")
	if ns == "" {
		return "", false, bad("an emulator address needs ?ns=<database name>")
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return "", false, bad("the Firebase Go SDK cannot reach an emulator by IP address; use a host name")
		}
		host = "localhost"
	}
	return host + ":" + u.Port() + "?ns=" + url.QueryEscape(ns), true, nil
}

// databaseName is the database's name: the ns parameter or the first label
// of the host.
func databaseName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "tollgate"
	}
	if ns := u.Query().Get("ns"); ns != "" {
		return ns
	}
	if h, _, ok := strings.Cut(u.Hostname(), "."); ok && h != "" && net.ParseIP(u.Hostname()) == nil {
		return h
	}
	return "tollgate"
}

// checkServiceAccount checks the shape of FIREBASE_KEY without echoing it,
// and returns its project ID.
func checkServiceAccount(b []byte) (string, error) {
	var sa struct {
		Type        string `json:"type"`
		ProjectID   string `json:"project_id"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
	}
	if err := json.Unmarshal(b, &sa); err != nil {
		return "", errors.New("rtdb: FIREBASE_KEY is not a service-account JSON key (it must be the base64 of the JSON key file downloaded from the Firebase console or IAM): it is not JSON")
	}
	if sa.Type != "service_account" || sa.ClientEmail == "" || sa.PrivateKey == "" {
		return "", errors.New(`rtdb: FIREBASE_KEY is not a service-account JSON key: it needs "type": "service_account", "client_email" and "private_key"`)
	}
	return sa.ProjectID, nil
}

// databaseError explains why the SDK would not make a database client.
func databaseError(dbURL string, err error) error {
	if h := os.Getenv(emulatorEnv); h != "" {
		return fmt.Errorf("rtdb: %s=%q is not usable: the Firebase Go SDK takes host:port?ns=<database name> with a host name, not an IP address (e.g. localhost:9000?ns=my-db): %w", emulatorEnv, h, err)
	}
	if strings.Contains(err.Error(), "credentials") {
		return fmt.Errorf("rtdb: no credentials for the Realtime Database at FIREBASE_RTDB_URL=%s: set FIREBASE_KEY to the base64 of a service-account JSON key, or run where Application Default Credentials exist: %w", dbURL, err)
	}
	return fmt.Errorf("rtdb: FIREBASE_RTDB_URL=%s is not usable (want https://<db>.firebaseio.com, https://<db>.<region>.firebasedatabase.app or, for the emulator, http://host:port?ns=<db>): %w", dbURL, err)
}

// openError explains a failed connectivity check.
func (s *Store) openError(err error, withKey bool) error {
	status := 0
	if resp := errorutils.HTTPResponse(err); resp != nil {
		status = resp.StatusCode
	}
	msg := err.Error()
	creds := "Application Default Credentials (FIREBASE_KEY is empty)"
	if withKey {
		creds = "FIREBASE_KEY"
	}
	switch {
	case status == 401 || status == 403 || strings.Contains(msg, "oauth2") || strings.Contains(msg, "fetch token") || strings.Contains(msg, "credentials"):
		return fmt.Errorf("rtdb: the Realtime Database at FIREBASE_RTDB_URL=%s refused the credentials: check %s and that its service account may use this database: %w", s.o.URL, creds, err)
	case status == 404:
		return fmt.Errorf("rtdb: no Realtime Database at FIREBASE_RTDB_URL=%s (404): check the database name and region in the URL: %w", s.o.URL, err)
	case status != 0:
		return fmt.Errorf("rtdb: the Realtime Database at FIREBASE_RTDB_URL=%s answered %d: check the URL and the database's state in the Firebase console: %w", s.o.URL, status, err)
	}
	where := "FIREBASE_RTDB_URL=" + s.o.URL
	if h := os.Getenv(emulatorEnv); h != "" && !strings.HasPrefix(s.o.URL, "http://") {
		where = emulatorEnv + "=" + h + " (FIREBASE_RTDB_URL=" + s.o.URL + ")"
	}
	return fmt.Errorf("rtdb: cannot reach the Realtime Database at %s within %s: check the URL and that the network allows it: %w", where, s.o.CallTimeout, err)
}

// unavailable is what callers see when the database fails them.
func unavailable(err error) error {
	var e *users.Error
	if errors.As(err, &e) {
		return err
	}
	if resp := errorutils.HTTPResponse(err); resp != nil && resp.StatusCode == 400 {
		// The database refused what we sent: a bug, not an outage.
		return &users.Error{Code: users.CodeInternal, Message: "Internal error.", Err: fmt.Errorf("rtdb: %w", err)}
	}
	return &users.Error{Code: users.CodeUnavailable, Message: "The user database is unavailable; try again shortly.", Err: fmt.Errorf("rtdb: %w", err)}
}

func (s *Store) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.o.CallTimeout)
}

// lock serializes this instance's writes to one user, so that they do not
// make each other's transactions retry.
func (s *Store) lock(token string) func() {
	m := &s.locks[lockIndex(token)]
	m.Lock()
	return m.Unlock
}

func lockIndex(token string) int {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(token); i++ {
		h = (h ^ uint32(token[i])) * 16777619
	}
	return int(h % 64)
}

// newWriterID is "w" and 64 random bits in base32 (14 letters and
// digits): a valid RTDB key that cannot read as an integer.
func newWriterID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return "w" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}
