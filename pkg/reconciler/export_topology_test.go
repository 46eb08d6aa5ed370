package reconciler

// SetTopology sets the topology of a controller built by another package's test.
func (c *Controller) SetTopology(t Topology) { c.opts.Topology = t }
