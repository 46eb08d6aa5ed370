package reconciler

// RefreshRoots opens the roots reconciles share, as the running loop does at each resync.
func (c *Controller) RefreshRoots() { c.refreshRoots(true) }
