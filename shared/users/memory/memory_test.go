package memory_test

import (
	"testing"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/users/userstest"
)

func TestConformance(t *testing.T) {
	userstest.Run(t, func(t *testing.T) users.Store { return memory.New() })
}
