package pow

// MACForTest signs an arbitrary payload, for tests that need a validly
// signed challenge with hostile contents.
func (s *Signer) MACForTest(payload string) string {
	return b64.EncodeToString(s.mac(payload))
}
