// Package app builds tollgate from the environment: configuration,
// secrets, logger and store, once per instance on its first request. Only
// the edges import it (the root package's Cloud Functions, cmd/local,
// cmd/bench); the functions receive what it builds.
package app

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/secrets"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/web"
)

// Instance is what Build makes: what a function's handler is built from
// (proxy.New and admin.New take it as it is).
type Instance = web.Deps

// StoreOpener opens the configured shared store; the memory store needs none.
type StoreOpener func(ctx context.Context, cfg *config.Config, log zerolog.Logger) (users.Store, error)

// Options tune Build.
type Options struct {
	Environ   []string  // os.Environ() form
	LogOutput io.Writer // default os.Stdout
	// OpenShared opens GATEKEEPER_STORE=firebase_rtdb.
	OpenShared StoreOpener
	// SecretTimeout bounds each Secret Manager call (default 10s).
	SecretTimeout time.Duration
}

// Build validates the configuration, resolves secret references, and opens
// the store. Its errors are one line naming the variable at fault.
func Build(ctx context.Context, o Options) (*Instance, error) {
	out := o.LogOutput
	if out == nil {
		out = os.Stdout
	}
	cfg, err := config.Load(o.Environ)
	if err != nil {
		return nil, err
	}
	if err := ResolveSecrets(ctx, cfg, o.SecretTimeout); err != nil {
		return nil, err
	}
	log := logging.New(out, cfg.LogLevel)
	for _, w := range cfg.Warnings {
		log.Warn().Msg(w)
	}
	store, err := OpenStore(ctx, cfg, log, o.OpenShared)
	if err != nil {
		return nil, err
	}
	return &Instance{Config: cfg, Store: store, Log: log, Now: time.Now}, nil
}

// ResolveSecrets replaces Secret Manager references in cfg by their values
// and validates them as literal values are.
func ResolveSecrets(ctx context.Context, cfg *config.Config, timeout time.Duration) error {
	vals := cfg.SecretValues()
	any := false
	for _, v := range vals {
		if secrets.IsReference(v) {
			any = true
		}
	}
	if !any {
		return nil
	}
	resolved, err := secrets.Resolve(ctx, vals, secrets.Options{
		Project:      cfg.Project,
		EmulatorHost: cfg.SecretEmulatorHost,
		Timeout:      timeout,
	})
	if err != nil {
		return fmt.Errorf("resolving secrets: %w", err)
	}
	cfg.ApplySecrets(resolved)
	return cfg.CheckSecrets()
}

// OpenStore opens the configured store.
func OpenStore(ctx context.Context, cfg *config.Config, log zerolog.Logger, openShared StoreOpener) (users.Store, error) {
	switch cfg.Store {
	case config.StoreMemory:
		log.Warn().Msg("GATEKEEPER_STORE=memory: users are kept in this instance only and are lost when it stops")
		return memory.New(), nil
	case config.StoreFirebase:
		if openShared == nil {
			return nil, fmt.Errorf("GATEKEEPER_STORE=firebase_rtdb is not available in this build")
		}
		return openShared(ctx, cfg, log)
	}
	return nil, fmt.Errorf("GATEKEEPER_STORE=%q is not supported", cfg.Store)
}

// DecodeFirebaseKey decodes FIREBASE_KEY (base64 service-account JSON);
// nil means Application Default Credentials.
func DecodeFirebaseKey(v string) ([]byte, error) {
	if v == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, &config.Error{Var: "FIREBASE_KEY", Accepted: "must be a base64-encoded service-account JSON key (or empty for Application Default Credentials)"}
	}
	return b, nil
}
