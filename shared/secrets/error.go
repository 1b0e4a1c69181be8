package secrets

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error names the variable whose secret could not be resolved, never the value.
type Error struct {
	Var    string // the configuration variable, e.g. ADMIN_KEY
	Ref    string // the reference or resolved resource name (not secret)
	Reason string // operator-facing explanation, includes Ref
	Err    error  // underlying cause, if any
}

// Error is one line: `VAR: reason`.
func (e *Error) Error() string { return e.Var + ": " + e.Reason }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// accessError explains a failed AccessSecretVersion call. The gRPC messages
// quoted come from the service and describe the resource, never its payload.
func accessError(v, name string, err error, timeout time.Duration) *Error {
	e := &Error{Var: v, Ref: name, Err: err}
	code := status.Code(err)
	switch {
	case code == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded):
		if !errors.Is(err, context.DeadlineExceeded) {
			e.Err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		e.Reason = fmt.Sprintf("secret %q not resolved within %s (DeadlineExceeded)", name, timeout)
	case code == codes.Canceled || errors.Is(err, context.Canceled):
		e.Reason = fmt.Sprintf("resolving secret %q canceled (Canceled)", name)
	case code == codes.NotFound:
		e.Reason = fmt.Sprintf("secret %q not found (NotFound)", name)
	case code == codes.PermissionDenied:
		e.Reason = fmt.Sprintf("access to secret %q denied (PermissionDenied): grant roles/secretmanager.secretAccessor to the function's service account", name)
	case code == codes.Unauthenticated:
		e.Reason = fmt.Sprintf("no valid credentials to access secret %q (Unauthenticated)", name)
	default:
		e.Reason = fmt.Sprintf("accessing secret %q failed (%s)", name, code)
		if s, ok := status.FromError(err); ok && s.Message() != "" {
			e.Reason += ": " + s.Message()
		}
	}
	return e
}

// join returns nil, the single *Error, or all of them (sorted by variable)
// so an operator fixes every broken reference in one deploy.
func join(errs []*Error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	slices.SortFunc(errs, func(a, b *Error) int { return cmp.Compare(a.Var, b.Var) })
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}
