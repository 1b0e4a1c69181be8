package memory

// BeforePruneDelete makes s's next PruneLimits run fn once, after it has
// judged its page and before it deletes: a request entering then races
// the prune.
func BeforePruneDelete(s *Store, fn func()) {
	s.limits.mu.Lock()
	defer s.limits.mu.Unlock()
	s.limits.beforeDelete = fn
}
