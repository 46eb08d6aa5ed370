package reconciler

// RefreshRoots opens the roots reconciles share, as the running loop does at each resync.
func (c *Controller) RefreshRoots() { c.refreshRoots(true) }

// SlotVerified reports whether key's slot is watch-verified: the next look may reuse its read.
func (c *Controller) SlotVerified(key string) bool {
	ks := c.state(key)
	return c.reusableSlot(&ks, c.settings()) != nil
}

// SetPassFlushBatch sets how many memory records a pass lets wait, until the test ends.
func SetPassFlushBatch(t interface{ Cleanup(func()) }, n int) {
	old := passFlushBatch
	passFlushBatch = n
	t.Cleanup(func() { passFlushBatch = old })
}
