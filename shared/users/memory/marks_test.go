package memory_test

import (
	"testing"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/users/userstest"
)

func TestMarksConformance(t *testing.T) {
	userstest.RunMarks(t, func(t *testing.T) users.Marks { return memory.New() })
}

func TestEventsConformance(t *testing.T) {
	userstest.RunEvents(t, func(t *testing.T) userstest.EventStore { return memory.New() })
}

func TestLimitsConformance(t *testing.T) {
	userstest.RunLimits(t, func(t *testing.T) userstest.LimitsStore {
		s := memory.New()
		return userstest.LimitsStore{Limits: s, BeforePruneDelete: func(fn func()) { memory.BeforePruneDelete(s, fn) }}
	})
}
