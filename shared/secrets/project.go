package secrets

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cloud.google.com/go/compute/metadata"
)

// errNoMetadata means there is no metadata server to ask: not on Google
// Cloud, or talking to an emulator (whose project is never the host's).
var errNoMetadata = errors.New("no metadata server")

// fallbackProject finds the project of the instance when GOOGLE_CLOUD_PROJECT
// is unset, as Cloud Functions does not always set it. It is bounded by the
// same deadline as an access call. A client of its own avoids the metadata
// package's process-wide caches.
func fallbackProject(ctx context.Context, opts Options) (string, error) {
	if opts.EmulatorHost != "" {
		return "", errNoMetadata
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	mc := metadata.NewWithOptions(&metadata.Options{})
	if !mc.OnGCEWithContext(ctx) {
		return "", errNoMetadata
	}
	id, err := mc.GetWithContext(ctx, "project/project-id")
	if err != nil {
		return "", fmt.Errorf("project id: %w", err)
	}
	if id = strings.TrimSpace(id); id == "" {
		return "", errors.New("project id: empty")
	}
	return id, nil
}
