package web

import (
	"time"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/users"
)

// Deps are what each function (the proxy, admin) is built from; the
// caller (function.go, cmd/local) builds them once per instance.
type Deps struct {
	Config *config.Config
	Store  users.Store
	Log    zerolog.Logger
	Now    func() time.Time // default time.Now
}
