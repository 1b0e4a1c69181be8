package app

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/users"
)

// OpenFirebase opens the Realtime Database store.
func OpenFirebase(ctx context.Context, cfg *config.Config, log zerolog.Logger) (users.Store, error) {
	return nil, fmt.Errorf("FIREBASE_RTDB_URL: the firebase_rtdb store is not wired yet")
}
