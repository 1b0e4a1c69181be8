package secrets

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	defaultTimeout = 10 * time.Second
	// maxParallel bounds concurrent calls; a deployment has about ten secrets.
	maxParallel = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configure Resolve.
type Options struct {
	Project       string                // for sm://NAME; from GOOGLE_CLOUD_PROJECT
	EmulatorHost  string                // from SECRET_MANAGER_EMULATOR_HOST: host:port, plaintext gRPC, no credentials
	Timeout       time.Duration         // per access call deadline (and metadata lookup); 0 means 10s
	ClientOptions []option.ClientOption // extra, for tests
}

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return defaultTimeout
	}
	return o.Timeout
}

// Resolve returns a copy of values (variable name -> raw value) in which every
// value that IsReference is replaced by the secret payload. Plain values pass
// through unchanged, and when no value is a reference no client is created.
//
// All references share one client; each access has its own deadline
// (Options.Timeout) and they run concurrently. Every failure is an *Error
// naming the variable; several failures are returned joined (errors.As finds
// the first, by variable name).
func Resolve(ctx context.Context, values map[string]string, opts Options) (map[string]string, error) {
	out := make(map[string]string, len(values))
	maps.Copy(out, values)

	var refVars []string
	for k, v := range values {
		if IsReference(v) {
			refVars = append(refVars, k)
		}
	}
	if len(refVars) == 0 {
		// Cold start must not pay for a gRPC client it does not need.
		return out, nil
	}
	slices.Sort(refVars)

	byName, err := versionNames(ctx, values, refVars, opts)
	if err != nil {
		return nil, err
	}

	client, err := newClient(ctx, opts)
	if err != nil {
		return nil, &Error{
			Var:    strings.Join(refVars, ", "),
			Reason: fmt.Sprintf("cannot create Secret Manager client: %v", err),
			Err:    err,
		}
	}
	defer client.Close()

	var (
		mu   sync.Mutex
		errs []*Error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, maxParallel)
	)
	for name, vars := range byName {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			payload, err := access(ctx, client, name, opts.timeout())
			mu.Lock()
			defer mu.Unlock()
			for _, v := range vars {
				if err != nil {
					e := *err
					e.Var = v
					errs = append(errs, &e)
					continue
				}
				out[v] = payload
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, join(errs)
	}
	return out, nil
}

// versionNames maps each resource name to the variables referring to it, so
// a secret shared by two variables is fetched once. It fails, before any
// call, on malformed references and on sm:// ones without a project.
func versionNames(ctx context.Context, values map[string]string, refVars []string, opts Options) (map[string][]string, error) {
	project := opts.Project
	var projectErr error
	looked := false
	var errs []*Error
	byName := map[string][]string{}
	for _, v := range refVars {
		ref := strings.TrimSpace(values[v])
		name, needProject, err := versionName(ref, project)
		if needProject && !looked {
			looked = true
			project, projectErr = fallbackProject(ctx, opts)
		}
		if needProject && project == "" {
			errs = append(errs, &Error{Var: v, Ref: ref, Reason: missingProject(ref, projectErr), Err: projectErr})
			continue
		}
		if needProject {
			name, _, err = versionName(ref, project)
		}
		if err != nil {
			errs = append(errs, &Error{Var: v, Ref: ref, Reason: err.Error()})
			continue
		}
		byName[name] = append(byName[name], v)
	}
	if err := join(errs); err != nil {
		return nil, err
	}
	return byName, nil
}

func missingProject(ref string, lookupErr error) string {
	msg := fmt.Sprintf("%q needs a project: set GOOGLE_CLOUD_PROJECT or use projects/P/secrets/S/versions/V", ref)
	if lookupErr != nil && !errors.Is(lookupErr, errNoMetadata) {
		msg += fmt.Sprintf(" (metadata server: %v)", lookupErr)
	}
	return msg
}

func newClient(ctx context.Context, opts Options) (*secretmanager.Client, error) {
	var co []option.ClientOption
	if opts.EmulatorHost != "" {
		// The emulator convention shared by Google's clients (see
		// PUBSUB_EMULATOR_HOST): plaintext gRPC and no credentials.
		co = append(co,
			option.WithEndpoint(opts.EmulatorHost),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
			option.WithTelemetryDisabled(),
		)
	}
	co = append(co, opts.ClientOptions...)
	// ctx is not given a deadline here: dialing is lazy, and the client may
	// keep the context for credential refreshes.
	return secretmanager.NewClient(ctx, co...)
}

// access fetches one version within its own deadline.
func access(ctx context.Context, client *secretmanager.Client, name string, timeout time.Duration) (string, *Error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name})
	if err != nil {
		return "", accessError("", name, err, timeout)
	}
	data := resp.GetPayload().GetData()
	// The client library does not check the checksum the service sends;
	// Google recommends doing it, and a corrupted key would fail far later.
	if want := resp.GetPayload().DataCrc32C; want != nil && int64(crc32.Checksum(data, castagnoli)) != *want {
		return "", &Error{Ref: name, Reason: fmt.Sprintf("secret %q payload failed its CRC32C check", name)}
	}
	// Operators often create secrets from files (gcloud secrets create
	// --data-file=key.txt) that end in a newline which is not part of the key.
	payload := string(data)
	if p, ok := strings.CutSuffix(payload, "\n"); ok {
		payload = strings.TrimSuffix(p, "\r")
	}
	if payload == "" {
		return "", &Error{Ref: name, Reason: fmt.Sprintf("secret %q is empty", name)}
	}
	return payload, nil
}
