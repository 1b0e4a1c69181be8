package app

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/rtdb"
)

// OpenFirebase opens the Realtime Database store: it checks connectivity
// now, and flushes usage every second until the instance shuts down.
func OpenFirebase(ctx context.Context, cfg *config.Config, log zerolog.Logger) (users.Store, error) {
	key, err := DecodeFirebaseKey(cfg.FirebaseKey)
	if err != nil {
		return nil, err
	}
	s, err := rtdb.Open(ctx, rtdb.Options{
		URL:             cfg.FirebaseRTDBURL,
		CredentialsJSON: key,
		UsersRef:        cfg.FirebaseUsersRef,
		CacheTTL:        cfg.UserCacheTTL,
		Logf: func(format string, args ...any) {
			log.Warn().Msg(fmt.Sprintf(format, args...))
		},
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}
